# Abridged restatement of what every NixOS VM test node gets from nixpkgs
# nixos/lib/testing/nixos-test-base.nix and nixos/modules/testing/test-instrumentation.nix
# (stored versions 1e156f9e and 026aeb71), with the serial device of
# nixos/lib/qemu-common.nix: the backdoor shell the driver talks to, the gettys it disables
# on the serial console and hvc0, the kernel consoles, the root password, the switch and
# version settings. journald, systemd manager and xwininfo settings are left out.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  hp = pkgs.stdenv.hostPlatform;
  qemuSerialDevice =
    if hp.isx86 || hp.isLoongArch64 || hp.isMips64 || hp.isRiscV then
      "ttyS0"
    else if hp.isAarch || hp.isPower then
      "ttyAMA0"
    else
      throw "Unknown QEMU serial device for system '${hp.system}'";
in
{
  systemd.services.backdoor = {
    wantedBy = [ "multi-user.target" ];
    requires = [
      "dev-hvc0.device"
      "dev-${qemuSerialDevice}.device"
    ];
    after = [
      "dev-hvc0.device"
      "dev-${qemuSerialDevice}.device"
    ];
    script = "exec /bin/sh  # nix-eval: the test driver's root shell on hvc0";
    serviceConfig.KillSignal = "SIGHUP";
  };

  # "Prevent agetty from being instantiated on the serial device, since it interferes with
  # the backdoor" (test-instrumentation.nix).
  systemd.services."serial-getty@${qemuSerialDevice}".enable = false;
  systemd.services."serial-getty@hvc0".enable = false;

  boot.kernel.sysctl = {
    "kernel.hung_task_timeout_secs" = 600;
    "vm.panic_on_oom" = lib.mkDefault 2;
  };
  boot.kernelParams = [
    "console=${qemuSerialDevice}"
    "console=tty0"
    "panic=1"
    "boot.panic_on_fail"
    "clocksource=acpi_pm"
  ];
  boot.consoleLogLevel = 7;
  networking.defaultGateway = lib.mkOverride 150 null;
  networking.nameservers = lib.mkOverride 150 [ ];
  networking.usePredictableInterfaceNames = false;
  users.users.root.hashedPasswordFile = lib.mkOverride 150 "${pkgs.writeText "hashed-password.root" ""}";
  services.logrotate.enable = lib.mkOverride 150 false;
  system.stateVersion = lib.mkOverride 1200 lib.trivial.release;

  # nixos-test-base.nix
  documentation.nixos.enable = false;
  system.nixos = {
    revision = lib.mkForce "constant-nixos-revision";
    versionSuffix = lib.mkForce "test";
    label = lib.mkForce "test";
  };
  system.switch.enable = lib.mkDefault (config.isSpecialisation || config.specialisation != { });
}
