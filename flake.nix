{
  description = "rustiscsi: a userspace iSCSI target, its NixOS module and a NAS appliance";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The flake's module: the plain module, with the package built by callPackage from the
      # configuration's own pkgs - its nixpkgs, overlays and cross settings - not from this
      # flake's nixpkgs input.
      nixosModule =
        { lib, pkgs, ... }:
        {
          imports = [ ./nixos-module/default.nix ];
          services.rustiscsi.package = lib.mkDefault (pkgs.callPackage ./package.nix { });
        };

      nasSystem =
        system:
        lib.nixosSystem {
          modules = [
            { nixpkgs.hostPlatform = system; }
            self.nixosModules.default
            ./images/nas.nix
          ];
        };
    in
    {
      overlays.default = final: _prev: { rustiscsi = final.callPackage ./package.nix { }; };

      packages = forAllSystems (
        pkgs:
        let
          rustiscsi = pkgs.callPackage ./package.nix { };
          nas = self.nixosConfigurations."nas-${pkgs.stdenv.hostPlatform.system}".config;
        in
        {
          inherit rustiscsi;
          default = rustiscsi;
          # UEFI qcow2 for QEMU/Proxmox/libvirt; raw for dd onto a USB stick or SSD.
          nas-image = nas.system.build.images.qemu-efi;
          nas-image-raw = nas.system.build.images.raw-efi;
        }
      );

      nixosModules.default = nixosModule;
      nixosModules.rustiscsi = nixosModule;

      nixosConfigurations = {
        nas = nasSystem "x86_64-linux";
        nas-x86_64-linux = self.nixosConfigurations.nas;
        nas-aarch64-linux = nasSystem "aarch64-linux";
      };

      # The package (its build runs `cargo test`) and its passthru.tests: the VM tests of
      # vm-tests/ (package.nix), which need a builder with KVM.
      checks = forAllSystems (
        pkgs:
        let
          rustiscsi = self.packages.${pkgs.stdenv.hostPlatform.system}.rustiscsi;
        in
        {
          package = rustiscsi;
        }
        // rustiscsi.passthru.tests
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.rustiscsi ];
          packages = with pkgs; [
            cargo
            rustc
            clippy
            rustfmt
            rust-analyzer
            # peers and tools for interop testing
            openiscsi
            libiscsi
            sg3_utils
            fio
            qemu
            tgt
            targetcli-fb
            nixfmt
          ];
        };
      });

      # `nix fmt`: nixfmt is the RFC 166 style formatter (the former nixfmt-rfc-style).
      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
