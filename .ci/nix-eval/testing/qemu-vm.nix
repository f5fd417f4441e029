# Abridged restatement of nixpkgs nixos/modules/virtualisation/qemu-vm.nix (stored version
# 00008e8e), which every node of a NixOS VM test imports: the options our test nodes set or
# the test framework reads, and the definitions that change a node's configuration (the VM's
# own file systems replace the configuration's, the profile qemu-guest.nix, GRUB pointed at
# the virtual disk, no "auto" disk size). The QEMU command line and the disk image builder
# are not restated.
{
  config,
  lib,
  options,
  modulesPath,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.virtualisation;
  rootFilesystemLabel = "nixos";
  opt = type: default: description: mkOption { inherit type default description; };
in
{
  imports = [
    (modulesPath + "/profiles/qemu-guest.nix")
    (modulesPath + "/virtualisation/disk-size-option.nix")
  ];

  options = {
    virtualisation.fileSystems = mkOption {
      type = options.fileSystems.type;
      default = { };
      description = "File systems of the VM (replace fileSystems when not empty).";
    };
    virtualisation.memorySize = opt types.ints.positive 1024 "Memory of the VM in MiB.";
    virtualisation.msize = opt types.ints.positive 16384 "9p msize in bytes.";
    virtualisation.diskImage = opt (types.nullOr types.str) "./${config.system.name or "nixos"}.qcow2" "Root disk image (null: tmpfs root).";
    virtualisation.bootLoaderDevice = opt types.path "/dev/disk/by-id/virtio-root" "Device to boot from when legacy booting.";
    virtualisation.rootDevice = opt (types.nullOr types.path) "/dev/disk/by-label/${rootFilesystemLabel}" "Device of the root file system.";
    virtualisation.emptyDiskImages = opt (types.listOf types.ints.positive) [ ] "Additional empty disks (sizes in MiB), /dev/vdb, /dev/vdc, ...";
    virtualisation.graphics = opt types.bool true "Run QEMU with a graphics window.";
    virtualisation.cores = opt types.ints.positive 1 "Number of cores of the VM.";
    virtualisation.additionalPaths = opt (types.listOf types.path) [ ] "Closures made available to the VM.";
    virtualisation.vlans = opt (types.listOf types.ints.unsigned) (if cfg.interfaces == { } then [ 1 ] else [ ]) "Virtual networks the VM is connected to.";
    virtualisation.interfaces = opt (types.attrsOf (
      types.submodule {
        options.vlan = mkOption {
          type = types.ints.unsigned;
          description = "VLAN of the interface.";
        };
        options.assignIP = opt types.bool false "Assign an address as for virtualisation.vlans.";
      }
    )) { } "Network interfaces to add to the VM.";
    virtualisation.writableStore = opt types.bool cfg.mountHostNixStore "Overlay a writable store on the host's.";
    virtualisation.useNixStoreImage = opt types.bool false "Use a store image instead of 9p.";
    virtualisation.mountHostNixStore = opt types.bool (!cfg.useNixStoreImage && !cfg.useBootLoader) "Mount the host Nix store with 9p.";
    virtualisation.directBoot.enable = opt types.bool (!cfg.useBootLoader) "Boot the kernel directly.";
    virtualisation.useBootLoader = opt types.bool false "Boot through the configured boot loader.";
    virtualisation.useEFIBoot = opt types.bool false "Provide an EFI boot manager.";
    virtualisation.useDefaultFilesystems = opt types.bool true "Format and mount the default test file systems.";
    virtualisation.qemu = {
      options = opt (types.listOf types.str) [ ] "Options passed to QEMU.";
      consoles = opt (types.listOf types.str) [ ] "Kernel console= devices (the last is primary).";
      networkingOptions = opt (types.listOf types.str) [ ] "Networking options passed to QEMU.";
      diskInterface = opt (types.enum [ "virtio" "scsi" "ide" ]) "virtio" "Interface of the virtual disks.";
      guestAgent.enable = opt types.bool true "Enable the QEMU guest agent device.";
      virtioKeyboard = opt types.bool true "Enable the virtio-keyboard device.";
    };
    networking.primaryIPAddress = mkOption {
      type = types.str;
      default = "";
      internal = true;
      description = "Primary IP address used in /etc/hosts.";
    };
    networking.primaryIPv6Address = mkOption {
      type = types.str;
      default = "";
      internal = true;
      description = "Primary IPv6 address used in /etc/hosts.";
    };
  };

  config = {
    boot.loader.grub.device = lib.mkVMOverride (if cfg.useEFIBoot then "nodev" else cfg.bootLoaderDevice);
    boot.loader.supportsInitrdSecrets = lib.mkIf (!cfg.useBootLoader) (lib.mkVMOverride false);
    boot.initrd.availableKernelModules = lib.optional (cfg.qemu.diskInterface == "scsi") "sym53c8xx";
    virtualisation.diskSizeAutoSupported = false;
    # The VM's own file systems replace the configuration's (mkVMOverride).
    fileSystems = lib.mkIf (cfg.fileSystems != { }) (lib.mkVMOverride cfg.fileSystems);
    virtualisation.fileSystems = {
      "/" = lib.mkIf cfg.useDefaultFilesystems (
        if cfg.diskImage == null then
          {
            device = "tmpfs";
            fsType = "tmpfs";
            options = [ "mode=755" ];
          }
        else
          {
            device = cfg.rootDevice;
            fsType = "ext4";
          }
      );
      "/nix/.ro-store" = lib.mkIf cfg.mountHostNixStore {
        device = "nix-store";
        fsType = "9p";
        neededForBoot = true;
        options = [
          "trans=virtio"
          "version=9p2000.L"
          "msize=${toString cfg.msize}"
          "cache=loose"
        ];
      };
    };
  };
}
