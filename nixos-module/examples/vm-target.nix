# The target of the NixOS VM tests (vm-tests/target-initiator.nix and reload-add-lun.nix),
# kept here so its rendered TOML is checked like the other examples.
# TEST ONLY: the CHAP secrets are in the Nix store (environment.etc).
{
  environment.etc = {
    "rustiscsi-test/client1".text = "client1secret1";
    "rustiscsi-test/client2".text = "client2secret02";
    "rustiscsi-test/target".text = "targetsecret22";
    "rustiscsi-test/discovery".text = "discoverysecret1";
  };

  services.rustiscsi = {
    enable = true;
    openFirewall = true;
    portals = [ "0.0.0.0:3260" ];

    discovery.chap = {
      user = "discovery";
      passwordFile = "/etc/rustiscsi-test/discovery";
    };

    backstores = {
      # md RAID1 of /dev/vdb and /dev/vdc, created by the test before the target starts
      nas0 = {
        kind = "block";
        path = "/dev/md/nas0";
      };
      file0 = {
        kind = "fileio";
        path = "/srv/iscsi/file0.img";
        size = "256M";
      };
    };

    targets."iqn.2026-11.org.example.nas:storage" = {
      # Explicit numbers: vm-tests/reload-add-lun.nix adds a LUN in a specialisation, whose
      # list entries the module system puts before these.
      luns = [
        {
          lun = 0;
          backstore = "nas0";
        }
        {
          lun = 1;
          backstore = "file0";
        }
      ];
      acls = {
        # CHAP + mutual CHAP, both LUNs read-write
        "iqn.2026-11.org.example:client1" = {
          mappedLuns = [
            { lun = 0; }
            { lun = 1; }
          ];
          chap = {
            user = "client1";
            passwordFile = "/etc/rustiscsi-test/client1";
          };
          mutualChap = {
            user = "nas";
            passwordFile = "/etc/rustiscsi-test/target";
          };
        };
        # CHAP only; sees just the file LUN, as its LUN 0, read-only
        "iqn.2026-11.org.example:client2" = {
          mappedLuns = [
            {
              lun = 0;
              targetLun = 1;
              readOnly = true;
            }
          ];
          chap = {
            user = "client2";
            passwordFile = "/etc/rustiscsi-test/client2";
          };
        };
      };
    };
  };
}
