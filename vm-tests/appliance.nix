# Boots the NAS appliance configuration (images/nas.nix, as nixosConfigurations.nas) and serves
# an initiator with the CHAP secrets it generated on first boot.
# The test driver boots the configuration directly (kernel + initrd, host store), not the built
# qcow2; images/README.md shows how to boot the image itself.
# Run: nix build .#checks.x86_64-linux.vm-appliance -L
{ ... }:
let
  common = import ./common.nix;
  # images/nas.nix serves this target to this initiator
  targetIqn = "iqn.2026-11.org.example.nas:storage";
in
{
  name = "rustiscsi-appliance";
  meta.maintainers = [ ];

  nodes = {
    nas = {
      imports = [ ../images/nas.nix ];
      virtualisation.memorySize = 1024;
      # virtio disks have no SMART: smartd would exit with nothing to watch
      services.smartd.enable = false;
    };
    client1 = common.initiatorNode common.client1;
  };

  testScript =
    { nodes, ... }:
    common.prelude {
      inherit targetIqn;
      targetIp = nodes.nas.networking.primaryIPAddress;
    }
    + ''
      start_all()
      nas.wait_for_unit("multi-user.target")
      nas.wait_for_unit("rustiscsi.service")
      nas.wait_for_unit("sshd.service")
      nas.wait_for_open_port(3260)
      nas.succeed("mdadm --version && lvm version && sg_inq --version")

      with subtest("appliance: headless access and firewall"):
          # The test driver owns the serial console: the NixOS test instrumentation disables
          # serial-getty@ttyS0 (and hvc0), so its getty cannot be observed here. What the
          # appliance itself sets is checked: its serial console (the one with a baud rate) is on
          # the kernel command line and is a port this machine has, and the tty1 getty runs.
          # The first console with a baud rate is the system's own (boot.kernelParams come first
          # on the command line; the VM runner appends its consoles after them).
          consoles = nas.succeed("grep -oE 'console=tty[A-Za-z]+[0-9]+,115200n8' /proc/cmdline").split()
          tty = consoles[0].split("=")[1].split(",")[0]
          # ttyS0 on x86_64, ttyAMA0 on aarch64: the port this machine has
          nas.succeed(f"test -e /sys/class/tty/{tty}/dev")
          nas.wait_for_unit("getty@tty1.service")
          client1.wait_for_unit("multi-user.target")
          client1.succeed(f"nc -z -w 5 {IP} 22")
          client1.succeed(f"nc -z -w 5 {IP} 3260")
          # keys only
          nas.succeed("${nodes.nas.services.openssh.package}/bin/sshd -T | grep -ix 'passwordauthentication no'")

      with subtest("appliance: first-boot secrets, not in the store"):
          nas.succeed("test -s /var/lib/rustiscsi-secrets/client1 -a -s /var/lib/rustiscsi-secrets/nas-mutual")
          nas.succeed("test \"$(stat -c %a /var/lib/rustiscsi-secrets/client1)\" = 600")
          secret = nas.succeed("cat /var/lib/rustiscsi-secrets/client1").strip()
          mutual = nas.succeed("cat /var/lib/rustiscsi-secrets/nas-mutual").strip()
          assert len(secret) == 16 and len(mutual) == 16

      with subtest("appliance: serves an initiator with CHAP + mutual CHAP"):
          client1.wait_for_unit("iscsid.service")
          make_pattern(client1)
          node_new(client1, chap("client1", secret, "nas", mutual))
          login(client1)
          client1.wait_for_file(dev(0))
          write_verify(client1, dev(0))
          logout(client1)

      with subtest("appliance: the config is owned by NixOS"):
          nas.succeed("grep -F 'managed_by = \"NixOS option services.rustiscsi\"' /etc/rustiscsi/rustiscsi.toml")
    '';
}
