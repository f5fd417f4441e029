# Not an iSCSI name (no date, upper case).
# expect: not a valid iSCSI name
{
  services.rustiscsi = {
    enable = true;
    backstores.disk0 = { kind = "fileio"; path = "/srv/iscsi/disk0.img"; size = "1G"; };
    targets."iqn.example.NAS:storage" = {
      luns = [ { backstore = "disk0"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
  };
}
