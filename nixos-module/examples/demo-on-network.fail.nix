# Demo mode on 0.0.0.0 without allowDemoModeOnNetwork.
# expect: demoMode lets any initiator read and write its LUNs
{
  services.rustiscsi = {
    enable = true;
    backstores.ram = { kind = "ramdisk"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "ram"; } ];
      demoMode = true;
    };
  };
}
