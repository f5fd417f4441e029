# The appliance's iSCSI target: imported by images/nas.nix, and by
# nixos-module/examples/appliance.nix so the offline module check renders its TOML.
#
# Out of the box: one sparse file LUN (/srv/iscsi/data.img) for one initiator with CHAP and
# mutual CHAP; the secrets are generated on first boot under /var/lib/rustiscsi-secrets.
{ pkgs, ... }:
let
  targetIqn = "iqn.2026-11.org.example.nas:storage";
  initiatorIqn = "iqn.2026-11.org.example:client1";
  secretsDir = "/var/lib/rustiscsi-secrets";
in
{
  # First-boot secrets, like sshd's host keys: generated once, never in the store.
  # Read them with `cat /var/lib/rustiscsi-secrets/client1` to configure the initiator.
  systemd.services.rustiscsi-secrets = {
    description = "Generate rustiscsi CHAP secrets on first boot";
    requiredBy = [ "rustiscsi.service" ];
    before = [ "rustiscsi.service" ];
    unitConfig.ConditionPathExists = "!${secretsDir}/.done";
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      UMask = "0077";
    };
    path = [ pkgs.coreutils ];
    script = ''
      mkdir -p ${secretsDir}
      for name in client1 nas-mutual; do
        f=${secretsDir}/$name
        # 16 hex characters: within the 12..16 range MD5-only initiators accept
        [ -s "$f" ] || od -An -N8 -tx1 /dev/urandom | tr -d ' \n' > "$f"
      done
      touch ${secretsDir}/.done
    '';
  };

  services.rustiscsi = {
    enable = true;
    openFirewall = true;
    portals = [ "0.0.0.0:3260" ];

    backstores = {
      data = {
        kind = "fileio";
        path = "/srv/iscsi/data.img";
        size = "16G";
      };
      # An md RAID1 (create once: mdadm --create /dev/md/nas0 --level=1 --raid-devices=2 DISK1 DISK2)
      # nas0 = { kind = "block"; path = "/dev/md/nas0"; };
      # An LVM volume (vgcreate tank /dev/md/nas1; lvcreate -L 500G -n vm1 tank)
      # vm1 = { kind = "block"; path = "/dev/tank/vm1"; };
    };

    targets.${targetIqn} = {
      luns = [ { backstore = "data"; } ];
      acls.${initiatorIqn} = {
        chap = {
          user = "client1";
          passwordFile = "${secretsDir}/client1";
        };
        mutualChap = {
          user = "nas";
          passwordFile = "${secretsDir}/nas-mutual";
        };
      };
    };
  };
}
