# A NAS serving an md RAID1 array, two LVM volumes and a sparse file:
# - client1 (hypervisor): CHAP + mutual CHAP, LUNs 0-2 read-write, the ISO store read-only;
# - backup: CHAP, sees only the backup volume (as its LUN 0), from one subnet;
# - discovery (SendTargets) needs CHAP too.
# Secrets live outside the store (e.g. written by sops-nix/agenix or by hand, mode 0400 root).
{
  services.rustiscsi = {
    enable = true;
    openFirewall = true;
    portals = [
      "192.168.10.5:3260"
      "[fd00:10::5]:3260"
    ];

    discovery.chap = {
      user = "discovery";
      passwordFile = "/run/secrets/iscsi/discovery";
    };

    backstores = {
      # mdadm --create /dev/md/nas0 --level=1 --raid-devices=2 /dev/disk/by-id/ata-A /dev/disk/by-id/ata-B
      nas0 = {
        kind = "block";
        path = "/dev/md/nas0";
      };
      # LVM on top of another array: vg "tank", logical volumes "vm1" and "backup"
      vm1 = {
        kind = "block";
        path = "/dev/tank/vm1";
      };
      backup = {
        kind = "block";
        path = "/dev/tank/backup";
      };
      iso = {
        kind = "fileio";
        path = "/srv/iscsi/iso-store.img";
        size = "200G";
        blockSize = 4096;
        writeCache = true;
      };
    };

    targets."iqn.2026-11.org.example.nas:storage" = {
      luns = [
        { backstore = "nas0"; }
        { backstore = "vm1"; }
        { backstore = "iso"; }
        {
          lun = 10;
          backstore = "backup";
        }
      ];
      acls = {
        "iqn.2005-03.org.open-iscsi:client1" = {
          mappedLuns = [
            { lun = 0; }
            { lun = 1; }
            {
              lun = 2;
              readOnly = true;
            }
          ];
          chap = {
            user = "client1";
            passwordFile = "/run/secrets/iscsi/client1";
          };
          mutualChap = {
            user = "nas";
            passwordFile = "/run/secrets/iscsi/nas-mutual";
          };
        };
        "iqn.2026-11.org.example:backup" = {
          mappedLuns = [
            {
              lun = 0;
              targetLun = 10;
            }
          ];
          chap = {
            user = "backup";
            passwordFile = "/run/secrets/iscsi/backup";
          };
          allowedNetworks = [ "192.168.10.0/24" ];
        };
      };
    };

    iscsi = {
      maxRecvDataSegmentLength = 1048576;
      headerDigest = [
        "CRC32C"
        "None"
      ];
    };
    limits.maxConnections = 64;
  };
}
