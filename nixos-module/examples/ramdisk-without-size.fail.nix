# A ramdisk needs a size.
# expect: a ramdisk needs `size`
{
  services.rustiscsi = {
    enable = true;
    portals = [ "127.0.0.1:3260" ];
    backstores.ram.kind = "ramdisk";
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "ram"; } ];
      demoMode = true;
    };
  };
}
