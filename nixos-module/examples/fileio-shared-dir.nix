# File LUNs directly in shared directories: /var/lib and /srv belong to the system, not to
# rustiscsi. The module must give the service the files, never take over their directories.
{
  services.rustiscsi = {
    enable = true;
    backstores = {
      vm = {
        kind = "fileio";
        path = "/var/lib/vm.img";
        size = "10G";
      };
      x = {
        kind = "fileio";
        path = "/srv/x.img";
        size = "10G";
      };
    };
    targets."iqn.2026-11.org.example.nas:files" = {
      luns = [
        { backstore = "vm"; }
        { backstore = "x"; }
      ];
      acls."iqn.2005-03.org.open-iscsi:client1" = { };
    };
  };
}
