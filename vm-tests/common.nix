# Shared pieces of the NixOS VM tests: node modules and a Python prelude for the test scripts.
# Not a test itself (the flake wires only the other files into `checks`).
{
  targetIqn = "iqn.2026-11.org.example.nas:storage";
  client1 = "iqn.2026-11.org.example:client1";
  client2 = "iqn.2026-11.org.example:client2";

  # The target of nixos-module/examples/vm-target.nix on three empty virtio disks:
  # /dev/vdb + /dev/vdc -> md RAID1 /dev/md/nas0 (LUN 0), /dev/vdd -> LVM vg0/lun1 (used by the
  # reload test), plus the file LUN /srv/iscsi/file0.img (LUN 1).
  targetNode =
    { pkgs, ... }:
    {
      imports = [ ../nixos-module/examples/vm-target.nix ];

      virtualisation.memorySize = 2048;
      virtualisation.emptyDiskImages = [
        512
        512
        512
      ];

      boot.swraid = {
        enable = true;
        mdadmConf = "MAILADDR root";
      };

      environment.systemPackages = with pkgs; [
        mdadm
        lvm2
        sg3_utils
      ];

      # Storage exists before the target starts (test only; a real NAS assembles its arrays).
      systemd.services.rustiscsi-test-storage = {
        description = "Create the test md RAID1 and LVM volume";
        requiredBy = [ "rustiscsi.service" ];
        before = [ "rustiscsi.service" ];
        requires = [
          "dev-vdb.device"
          "dev-vdc.device"
          "dev-vdd.device"
        ];
        after = [
          "dev-vdb.device"
          "dev-vdc.device"
          "dev-vdd.device"
        ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
        path = with pkgs; [
          mdadm
          lvm2
          systemd
          coreutils
        ];
        script = ''
          mdadm --create --run --assume-clean /dev/md/nas0 --metadata=1.2 \
            --level=1 --raid-devices=2 /dev/vdb /dev/vdc
          pvcreate -y /dev/vdd
          vgcreate vg0 /dev/vdd
          lvcreate -y -L 128M -n lun1 vg0
          udevadm settle
          test -b /dev/md/nas0
          test -b /dev/vg0/lun1
        '';
      };
    };

  initiatorNode =
    name:
    { pkgs, ... }:
    {
      virtualisation.memorySize = 1024;
      services.openiscsi = {
        enable = true;
        inherit name;
        # Refused logins fail fast; sessions survive a target restart (replacement_timeout).
        extraConfig = ''
          node.session.initial_login_retry_max = 2
          node.conn[0].timeo.login_timeout = 5
          node.session.timeo.replacement_timeout = 120
        '';
      };
      environment.systemPackages = with pkgs; [
        openiscsi
        libiscsi
        sg3_utils
        e2fsprogs
        util-linux
        netcat
      ];
    };

  # Python helpers; `ip` is the target's address. Node records are created explicitly for
  # ip:3260 so the tests do not depend on the TargetAddress the target reports in SendTargets.
  prelude =
    { targetIqn, targetIp }:
    ''
      import shlex

      TARGET = "${targetIqn}"
      IP = "${targetIp}"
      PORTAL = f"{IP}:3260"


      def dev(lun):
          return f"/dev/disk/by-path/ip-{PORTAL}-iscsi-{TARGET}-lun-{lun}"


      def node_new(m, settings):
          base = f"iscsiadm -m node -T {TARGET} -p {PORTAL}"
          m.execute(f"{base} -o delete")
          m.succeed(f"{base} -o new")
          for key, value in settings:
              m.succeed(f"{base} -o update -n {key} -v {shlex.quote(value)}")


      def chap(user, secret, mutual_user=None, mutual_secret=None):
          s = [
              ("node.session.auth.authmethod", "CHAP"),
              ("node.session.auth.username", user),
              ("node.session.auth.password", secret),
          ]
          if mutual_user is not None:
              s += [
                  ("node.session.auth.username_in", mutual_user),
                  ("node.session.auth.password_in", mutual_secret),
              ]
          return s


      def login(m):
          m.succeed(f"iscsiadm -m node -T {TARGET} -p {PORTAL} --login")


      def login_fails(m):
          m.fail(f"iscsiadm -m node -T {TARGET} -p {PORTAL} --login")
          m.fail(f"iscsiadm -m session | grep -F {TARGET}")


      def logout(m):
          m.succeed(f"iscsiadm -m node -T {TARGET} -p {PORTAL} --logout")


      def discover(m, user=None, secret=None):
          base = f"iscsiadm -m discoverydb -t sendtargets -p {PORTAL}"
          m.execute(f"{base} -o delete")
          m.succeed(f"{base} -o new")
          if user is not None:
              for key, value in [
                  ("discovery.sendtargets.auth.authmethod", "CHAP"),
                  ("discovery.sendtargets.auth.username", user),
                  ("discovery.sendtargets.auth.password", secret),
              ]:
                  m.succeed(f"{base} -o update -n {key} -v {shlex.quote(value)}")
          return m.execute(f"{base} --discover")


      def make_pattern(m, path="/tmp/pat"):
          # 8 MiB, deterministic (every VM builds the same bytes), each 8-byte line names its offset
          m.succeed(f"seq -w 0 1048575 > {path}")
          assert m.succeed(f"stat -c %s {path}").strip() == str(8 << 20)


      def write_verify(m, device, path="/tmp/pat"):
          m.succeed(f"dd if={path} of={device} bs=1M oflag=direct status=none")
          m.succeed(f"dd if={device} bs=1M count=8 iflag=direct status=none | cmp - {path}")


      def start_background_io(m, device, rounds=30, path="/tmp/pat"):
          """Write and verify `device` in a loop in a transient unit; see background_io_ok."""
          m.succeed("rm -f /tmp/bgio.rc")
          loop = (
              f"for i in $(seq 1 {rounds}); do "
              f"dd if={path} of={device} bs=1M oflag=direct status=none || exit 1; "
              f"dd if={device} bs=1M count=8 iflag=direct status=none | cmp - {path} || exit 2; "
              "sleep 0.5; done"
          )
          script = f"( {loop} ); echo $? > /tmp/bgio.rc"
          m.succeed(f"systemd-run --unit=bgio-$RANDOM sh -c {shlex.quote(script)}")


      def background_io_ok(m, timeout=300):
          m.wait_for_file("/tmp/bgio.rc", timeout=timeout)
          rc = m.succeed("cat /tmp/bgio.rc").strip()
          assert rc == "0", f"background I/O failed with {rc}"


      def session_ids(m):
          return m.succeed("iscsiadm -m session | sed -n 's/^[^[]*\\[\\([0-9]*\\)\\].*/\\1/p' | sort").split()


      def main_pid(m):
          return m.succeed("systemctl show -p MainPID --value rustiscsi.service").strip()
    '';
}
