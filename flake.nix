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

      cargoToml = lib.importTOML ./Cargo.toml;

      rustiscsiFor =
        pkgs:
        pkgs.rustPlatform.buildRustPackage {
          pname = "rustiscsi";
          inherit (cargoToml.package) version;

          # Only what cargo needs: edits to Nix files, docs or VM tests do not rebuild the daemon.
          src = lib.fileset.toSource {
            root = ./.;
            fileset = lib.fileset.unions [
              ./Cargo.toml
              ./Cargo.lock
              ./src
              # read by the unit tests (every example must validate)
              ./examples
              (lib.fileset.maybeMissing ./tests)
              (lib.fileset.maybeMissing ./benches)
            ];
          };

          # No hash needed as long as every dependency comes from crates.io
          # (git dependencies would need cargoLock.outputHashes).
          cargoLock.lockFile = ./Cargo.lock;

          # `cargo test` runs in the sandbox: no network, no KVM, no open-iscsi. Tests that need
          # those (the Debian QEMU runner, interop against tgt/libiscsi) must be `#[ignore]`d or
          # listed here as `--skip <name>`; the NixOS VM tests in ./vm-tests cover them instead.
          # Today no test needs skipping.
          checkFlags = [ ];

          meta = {
            description = cargoToml.package.description;
            license = with lib.licenses; [
              mit
              asl20
            ];
            mainProgram = "rustiscsi";
            platforms = lib.platforms.linux;
          };
        };

      # The module the flake exports: the plain module plus our package as the default.
      nixosModule =
        { pkgs, ... }:
        {
          imports = [ ./nixos-module ];
          services.rustiscsi.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.rustiscsi;
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

      vmTestsFor =
        pkgs:
        let
          vmTest =
            file:
            pkgs.testers.runNixOSTest {
              imports = [ file ];
              defaults.imports = [ self.nixosModules.default ];
            };
        in
        {
          vm-target-initiator = vmTest ./vm-tests/target-initiator.nix;
          vm-reload-add-lun = vmTest ./vm-tests/reload-add-lun.nix;
          vm-appliance = vmTest ./vm-tests/appliance.nix;
        };
    in
    {
      overlays.default = final: _prev: { rustiscsi = rustiscsiFor final; };

      packages = forAllSystems (
        pkgs:
        let
          rustiscsi = rustiscsiFor pkgs;
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

      checks = forAllSystems (
        pkgs:
        {
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.rustiscsi;
        }
        // vmTestsFor pkgs
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
