# Block LUNs on a ZFS volume, an NBD device and an md array that is created after boot, plus
# a SCSI generic node the daemon is allowed to open (the escape hatch for device groups the
# module does not list).
{
  services.rustiscsi = {
    enable = true;
    backstores = {
      zvol = {
        kind = "block";
        path = "/dev/zvol/tank/vm1";
      };
      nbd = {
        kind = "block";
        path = "/dev/nbd0";
      };
      later = {
        kind = "block";
        path = "/dev/md/later";
      };
    };
    extraDeviceAllow = [ "/dev/sg3 rw" ];
    targets."iqn.2026-11.org.example.nas:blocks" = {
      luns = [
        { backstore = "zvol"; }
        { backstore = "nbd"; }
        { backstore = "later"; }
      ];
      acls."iqn.2005-03.org.open-iscsi:client1" = { };
    };
  };
}
