# Changing the configuration reloads the daemon instead of restarting it: switch the target to a
# specialisation that adds a block LUN (LVM volume vg0/lun1) while an initiator keeps its
# session and I/O; the daemon's MainPID must not change.
# Run: nix build .#checks.x86_64-linux.vm-reload-add-lun -L
{ ... }:
let
  common = import ./common.nix;
  inherit (common) targetIqn;
in
{
  name = "rustiscsi-reload-add-lun";
  meta.maintainers = [ ];

  nodes = {
    target = {
      imports = [ common.targetNode ];
      specialisation.addlun.configuration = {
        services.rustiscsi = {
          backstores.lun1 = {
            kind = "block";
            path = "/dev/vg0/lun1";
          };
          targets.${targetIqn} = {
            luns = [
              {
                lun = 2;
                backstore = "lun1";
              }
            ];
            acls.${common.client1}.mappedLuns = [ { lun = 2; } ];
          };
        };
      };
    };
    client1 = common.initiatorNode common.client1;
  };

  testScript =
    { nodes, ... }:
    let
      switchToAddLun = "${nodes.target.system.build.toplevel}/specialisation/addlun/bin/switch-to-configuration";
    in
    common.prelude {
      inherit targetIqn;
      targetIp = nodes.target.networking.primaryIPAddress;
    }
    + ''
      start_all()
      target.wait_for_unit("rustiscsi.service")
      target.wait_for_open_port(3260)
      client1.wait_for_unit("iscsid.service")
      make_pattern(client1)

      node_new(client1, chap("client1", "client1secret1", "nas", "targetsecret22"))
      login(client1)
      client1.wait_for_file(dev(0))
      client1.wait_for_file(dev(1))
      client1.fail(f"test -e {dev(2)}")
      write_verify(client1, dev(1))

      with subtest("reload-add-lun: switch adds a LUN, the daemon is reloaded, not restarted"):
          pid_before = main_pid(target)
          sessions_before = session_ids(client1)
          start_background_io(client1, dev(1), rounds=40)

          out = target.succeed("${switchToAddLun} test 2>&1")
          print(out)
          for line in out.splitlines():
              if line.startswith(("stopping the following units", "restarting the following units")):
                  assert "rustiscsi.service" not in line, line
          target.wait_until_succeeds("grep -F lun1 /etc/rustiscsi/rustiscsi.toml")
          target.wait_for_unit("rustiscsi.service")
          assert main_pid(target) == pid_before, "rustiscsid was restarted instead of reloaded"

          # the kernel initiator learns about new LUNs on a rescan
          client1.wait_until_succeeds(
              f"iscsiadm -m session --rescan && udevadm settle && test -e {dev(2)}", timeout=120
          )
          write_verify(client1, dev(2))
          background_io_ok(client1)
          assert session_ids(client1) == sessions_before, "the initiator's session was replaced"
          assert main_pid(target) == pid_before

      with subtest("the old LUNs still hold their data"):
          write_verify(client1, dev(0))
          client1.succeed(f"dd if={dev(1)} bs=1M count=8 iflag=direct status=none | cmp - /tmp/pat")

      logout(client1)
    '';
}
