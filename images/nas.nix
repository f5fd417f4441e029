# rustiscsi NAS appliance: a headless NixOS machine that serves iSCSI.
#
# Used by the flake as nixosConfigurations.nas (with self.nixosModules.default) and built into
# images with the built-in image variants (system.build.images.<variant>):
#   nix build .#nas-image        # qemu-efi: UEFI qcow2 (QEMU, libvirt, Proxmox)
#   nix build .#nas-image-raw    # raw-efi: raw UEFI disk (.img) to dd onto a USB stick or SSD
# See images/README.md.
#
# Out of the box it serves one sparse file LUN (/srv/iscsi/data.img) to one initiator with CHAP
# and mutual CHAP; the secrets are generated on first boot under /var/lib/rustiscsi-secrets.
# Adapt `services.rustiscsi` below (md RAID / LVM examples are in the comments), and give
# yourself a way in: an SSH key for root (see "network and access").
{
  config,
  lib,
  pkgs,
  modulesPath,
  ...
}:
let
  hostPlatform = pkgs.stdenv.hostPlatform;
  # The first serial port as the kernel names it: 8250 UARTs on x86 (ttyS0), the PL011 of
  # Arm servers and QEMU's `virt` machine on aarch64 (ttyAMA0) - the same choice as nixpkgs'
  # nixos/lib/qemu-common.nix (qemuSerialDevice).
  serialConsole = if hostPlatform.isAarch then "ttyAMA0" else "ttyS0";

  # Someone can log in: root or a wheel user with an SSH key or a password (the same
  # criterion as NixOS' "locked out" assertion for users.mutableUsers = false).
  canLogIn =
    u:
    (u.name == "root" || u.group == "wheel" || lib.elem "wheel" u.extraGroups)
    && (
      u.openssh.authorizedKeys.keys != [ ]
      || u.openssh.authorizedKeys.keyFiles != [ ]
      || (u.hashedPasswordFile or null) != null
      || (u.password or null) != null
      || (u.initialPassword or null) != null
      || (u.hashedPassword or null != null && !(lib.hasPrefix "!" u.hashedPassword) && !(lib.hasPrefix "*" u.hashedPassword))
      || (u.initialHashedPassword or null != null && !(lib.hasPrefix "!" u.initialHashedPassword))
    );
in
{
  imports = [
    # virtio drivers in the initrd (this profile enables no guest agent; the qcow2 image
    # does, below); harmless on bare metal
    (modulesPath + "/profiles/qemu-guest.nix")
    # Not profiles/headless.nix: it disables the serial and tty1 gettys we want.
    # The iSCSI target itself (also evaluated offline as nixos-module/examples/appliance.nix).
    ./nas-target.nix
  ];

  system.stateVersion = "26.05";

  networking.hostName = lib.mkDefault "nas";

  # ---------------------------------------------------------------- boot and disks
  # Same layout as the qemu-efi/raw-efi images (nixos/modules/virtualisation/disk-image.nix):
  # ext4 root labelled "nixos" (grown to the disk on first boot), ESP labelled "ESP".
  # Declared here too so the plain system (nixos-rebuild switch on the box) has them.
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
    autoResize = true;
  };
  fileSystems."/boot" = {
    device = "/dev/disk/by-label/ESP";
    fsType = "vfat";
    options = [ "umask=0077" ];
  };
  boot.loader.systemd-boot.enable = true;
  boot.loader.efi.canTouchEfiVariables = false;
  boot.loader.timeout = 1;
  # boot.growPartition is switched on by the image variants (disk-image.nix).

  # The raw image boots from whatever it was written to: a USB stick or disk (usb_storage,
  # uas behind xHCI), SATA (ahci), NVMe, SD/eMMC. NixOS' default initrd modules
  # (nixos/modules/system/boot/kernel.nix) have no USB mass storage.
  boot.initrd.availableKernelModules = [
    "usb_storage"
    "uas"
    "xhci_pci"
    "ehci_pci"
    "ahci"
    "sd_mod"
    "nvme"
    "mmc_block"
    "sdhci_pci"
  ];

  # Serial console first for logs, the serial port last = primary console (systemd starts a
  # getty on it).
  boot.kernelParams = [
    "console=tty0"
    "console=${serialConsole},115200n8"
  ];

  # md RAID and LVM: tools, assembly at boot, mdmonitor mail target.
  boot.swraid = {
    enable = true;
    mdadmConf = "MAILADDR root";
  };
  services.lvm.enable = true;
  hardware.enableRedistributableFirmware = lib.mkDefault true;

  # Disk health on real disks (the qcow2 image below turns it off: virtual disks have no SMART
  # and smartd would exit with no device to watch). Problems are sent to logged-in users (wall).
  services.smartd.enable = lib.mkDefault true;

  # image.baseName exists only inside an image variant: nixos/modules/image/file-options.nix
  # is imported by the variant builders (virtualisation/disk-image.nix), not by the module
  # list, so each variant gets its name here.
  image.modules = {
    qemu-efi = {
      image.baseName = lib.mkDefault "rustiscsi-nas";
      virtualisation.diskSize = lib.mkDefault 4096;
      # A VM: the hypervisor's guest agent channel (shutdown, addresses), no SMART.
      services.qemuGuest.enable = lib.mkDefault true;
      services.smartd.enable = lib.mkOverride 999 false;
    };
    raw-efi = {
      image.baseName = lib.mkDefault "rustiscsi-nas";
      virtualisation.diskSize = lib.mkDefault 4096;
    };
  };

  # ---------------------------------------------------------------- network and access
  networking.useNetworkd = true;
  networking.useDHCP = lib.mkDefault true;
  networking.firewall.enable = true; # only what services open (ssh 22, iSCSI 3260)

  services.openssh = {
    enable = true;
    openFirewall = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };
  # Put your key here (or in a module layered on top of this one).
  users.users.root.openssh.authorizedKeys.keys = lib.mkDefault [ ];

  warnings = lib.optional (!lib.any canLogIn (lib.attrValues config.users.users)) ''
    images/nas.nix: this appliance has no way to log in: neither root nor a wheel user has an
    SSH key or a password, sshd accepts keys only and the consoles ask for a password. Set
    users.users.root.openssh.authorizedKeys.keys (or a password) before you build an image
    you mean to manage.
  '';

  environment.systemPackages = with pkgs; [
    mdadm
    lvm2
    sg3_utils
    smartmontools
    nvme-cli
    e2fsprogs
    xfsprogs
  ];
}
