# A LUN names a backstore that does not exist.
# expect: backstore "disk1" is not defined
{
  services.rustiscsi = {
    enable = true;
    backstores.disk0 = { kind = "fileio"; path = "/srv/iscsi/disk0.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "disk1"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
  };
}
