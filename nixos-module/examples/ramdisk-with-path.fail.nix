# A ramdisk has no path.
# expect: a ramdisk has no path
{
  services.rustiscsi = {
    enable = true;
    portals = [ "127.0.0.1:3260" ];
    backstores.ram = { kind = "ramdisk"; path = "/dev/ram0"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "ram"; } ];
      demoMode = true;
    };
  };
}
