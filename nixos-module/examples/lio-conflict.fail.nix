# The kernel LIO target wants port 3260 as well.
# expect: both serve iSCSI on port 3260
{
  services.target.enable = true;
  services.rustiscsi = {
    enable = true;
    backstores.disk0 = { kind = "fileio"; path = "/srv/iscsi/disk0.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "disk0"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
  };
}
