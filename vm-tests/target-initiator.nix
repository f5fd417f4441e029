# rustiscsi target (md RAID1 LUN 0 + file LUN 1, nixos-module/examples/vm-target.nix) against
# two open-iscsi initiators: discovery CHAP, wrong password, CHAP + mutual CHAP with digests,
# mkfs/write/verify, LUN masking + read-only, a denied initiator, a target restart with I/O
# resuming. Run: nix build .#checks.x86_64-linux.vm-target-initiator -L
{ ... }:
let
  common = import ./common.nix;
  inherit (common) targetIqn;
in
{
  name = "rustiscsi-target-initiator";
  meta.maintainers = [ ];

  nodes = {
    target = common.targetNode;
    client1 = common.initiatorNode common.client1;
    client2 = common.initiatorNode common.client2;
  };

  testScript =
    { nodes, ... }:
    common.prelude {
      inherit targetIqn;
      targetIp = nodes.target.networking.primaryIPAddress;
    }
    + ''
      start_all()
      target.wait_for_unit("rustiscsi-test-storage.service")
      target.wait_for_unit("rustiscsi.service")
      target.wait_for_open_port(3260)
      # hardening sanity: the daemon runs unprivileged with its config from /etc
      target.succeed("test \"$(systemctl show -p User --value rustiscsi)\" = rustiscsi")
      target.succeed("grep -F 'managed_by' /etc/rustiscsi/rustiscsi.toml")
      print(target.succeed("systemd-analyze security rustiscsi.service --no-pager || true"))

      for c in (client1, client2):
          c.wait_for_unit("multi-user.target")
          c.wait_for_unit("iscsid.service")
          make_pattern(c)

      with subtest("discovery-chap"):
          status, _ = discover(client1)
          assert status != 0, "discovery without CHAP must be refused"
          status, _ = discover(client1, "discovery", "wrongsecret123")
          assert status != 0, "discovery with a wrong secret must be refused"
          status, out = discover(client1, "discovery", "discoverysecret1")
          assert status == 0 and TARGET in out, f"discovery failed: {out}"

      with subtest("wrong-password"):
          node_new(client1, chap("client1", "wrongsecret12", "nas", "targetsecret22"))
          login_fails(client1)

      with subtest("mutual-chap: the initiator refuses a target that proves the wrong secret"):
          node_new(client1, chap("client1", "client1secret1", "nas", "wrongtarget123"))
          login_fails(client1)

      with subtest("chap, mutual-chap, digests: client1 logs in"):
          node_new(
              client1,
              chap("client1", "client1secret1", "nas", "targetsecret22")
              + [
                  ("node.conn[0].iscsi.HeaderDigest", "CRC32C"),
                  ("node.conn[0].iscsi.DataDigest", "CRC32C"),
              ],
          )
          login(client1)
          client1.wait_for_file(dev(0))
          client1.wait_for_file(dev(1))
          params = client1.succeed("iscsiadm -m session -P 2")
          assert "HeaderDigest: CRC32C" in params, params
          assert "DataDigest: CRC32C" in params, params

      with subtest("basic: SCSI identity, raw write and verify, mkfs"):
          client1.succeed(f"sg_inq {dev(0)}")
          client1.succeed(f"sg_vpd -p 0x83 {dev(0)}")
          print(client1.succeed(f"sg_readcap -l {dev(1)}"))
          size = int(client1.succeed(f"blockdev --getsize64 {dev(1)}"))
          assert size == 256 << 20, f"file LUN has {size} bytes"
          write_verify(client1, dev(1))
          client1.succeed(f"mkfs.ext4 -q -F {dev(0)}")
          client1.succeed(f"mkdir -p /mnt && mount {dev(0)} /mnt")
          client1.succeed("cp /tmp/pat /mnt/pat && sync")
          client1.succeed("umount /mnt && mount " + dev(0) + " /mnt")
          client1.succeed("cmp /mnt/pat /tmp/pat")

      with subtest("lun-masking and read-only: client2 sees target LUN 1 as its LUN 0, read-only"):
          node_new(client2, chap("client2", "client2secret02"))
          login(client2)
          client2.wait_for_file(dev(0))
          client2.succeed("udevadm settle")
          client2.fail(f"test -e {dev(1)}")
          # same bytes client1 wrote to target LUN 1
          client2.succeed(f"dd if={dev(0)} bs=1M count=8 iflag=direct status=none | cmp - /tmp/pat")
          client2.succeed(f"test \"$(blockdev --getro {dev(0)})\" = 1")
          client2.fail(f"dd if=/tmp/pat of={dev(0)} bs=1M count=1 oflag=direct status=none")
          logout(client2)

      with subtest("denied-initiator: an IQN without an ACL is refused"):
          url = f"iscsi://client2%client2secret02@{IP}/{TARGET}/0"
          client1.succeed(f"iscsi-inq -i ${common.client2} '{url}'")
          client1.fail(f"iscsi-inq -i iqn.2026-11.org.example:intruder '{url}'")

      with subtest("restart: I/O resumes after the target restarts"):
          start_background_io(client1, dev(1))
          target.systemctl("restart rustiscsi.service")
          target.wait_for_unit("rustiscsi.service")
          background_io_ok(client1)
          client1.succeed("cmp /mnt/pat /tmp/pat")
          client1.succeed("touch /mnt/after-restart && sync")

      client1.succeed("umount /mnt")
      logout(client1)
    '';
}
