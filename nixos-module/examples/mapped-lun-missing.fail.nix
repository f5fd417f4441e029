# An ACL maps target LUN 3, the target has only LUN 0.
# expect: maps target LUN 3, which the target does not have
{
  services.rustiscsi = {
    enable = true;
    backstores.disk0 = { kind = "fileio"; path = "/srv/iscsi/disk0.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "disk0"; } ];
      acls."iqn.2005-03.org.open-iscsi:c".mappedLuns = [ { lun = 0; targetLun = 3; } ];
    };
  };
}
