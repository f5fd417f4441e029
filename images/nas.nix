# rustiscsi NAS appliance: a headless NixOS machine that serves iSCSI.
#
# Used by the flake as nixosConfigurations.nas (with self.nixosModules.default) and built into
# images with the built-in image variants (system.build.images.<variant>):
#   nix build .#nas-image        # qemu-efi: UEFI qcow2 (QEMU, libvirt, Proxmox)
#   nix build .#nas-image-raw    # raw-efi: dd onto a USB stick or SSD
# See images/README.md.
#
# Out of the box it serves one sparse file LUN (/srv/iscsi/data.img) to one initiator with CHAP
# and mutual CHAP; the secrets are generated on first boot under /var/lib/rustiscsi-secrets.
# Adapt `services.rustiscsi` below (md RAID / LVM examples are in the comments).
{
  lib,
  pkgs,
  modulesPath,
  ...
}:
{
  imports = [
    # virtio drivers and the QEMU guest agent; harmless on bare metal
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

  # Serial console first for logs, ttyS0 last = primary console (systemd starts a getty on it).
  boot.kernelParams = [
    "console=tty0"
    "console=ttyS0,115200n8"
  ];

  # md RAID and LVM: tools, assembly at boot, mdmonitor mail target.
  boot.swraid = {
    enable = true;
    mdadmConf = "MAILADDR root";
  };
  services.lvm.enable = true;
  hardware.enableRedistributableFirmware = lib.mkDefault true;

  # image.baseName exists only inside an image variant: nixos/modules/image/file-options.nix
  # is imported by the variant builders (virtualisation/disk-image.nix), not by the module
  # list, so each variant gets its name here.
  image.modules = {
    qemu-efi = {
      image.baseName = lib.mkDefault "rustiscsi-nas";
      virtualisation.diskSize = lib.mkDefault 4096;
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

  environment.systemPackages = with pkgs; [
    mdadm
    lvm2
    sg3_utils
    smartmontools
    nvme-cli
    e2fsprogs
    xfsprogs
  ];

  # On real disks, also consider services.smartd.enable = true (it fails on virtual disks).
}
