# rustiscsi: the target daemon (rustiscsid), the management CLI (rustiscsi), their man pages
# (rustiscsid(8), rustiscsi(8) generated from the clap definitions, rustiscsi.toml(5)) and
# shell completions. Called with `callPackage` by flake.nix: the packages, the overlay and the
# NixOS module's default all build it from the package set they are given.
{
  lib,
  stdenv,
  rustPlatform,
  installShellFiles,
  buildPackages,
  testers,
}:
let
  cargoToml = lib.importTOML ./Cargo.toml;

  # The NixOS VM tests (vm-tests/*.nix but the shared common.nix), run with this very package.
  vmTests = lib.mapAttrs' (file: _: lib.nameValuePair "vm-${lib.removeSuffix ".nix" file}" (./vm-tests + "/${file}")) (
    lib.filterAttrs (f: type: type == "regular" && lib.hasSuffix ".nix" f && f != "common.nix") (
      builtins.readDir ./vm-tests
    )
  );
in
rustPlatform.buildRustPackage (finalAttrs: {
  pname = "rustiscsi";
  inherit (cargoToml.package) version;

  # Only what cargo needs: edits to Nix files, docs or VM tests do not rebuild the daemon.
  src = lib.fileset.toSource {
    root = ./.;
    fileset = lib.fileset.unions [
      ./Cargo.toml
      ./Cargo.lock
      ./src
      ./xtask
      # the hand-written rustiscsi.toml(5), read by a test and installed
      ./doc
      # read by the unit tests (every example must validate)
      ./examples
      (lib.fileset.maybeMissing ./tests)
      (lib.fileset.maybeMissing ./benches)
    ];
  };

  # No hash needed as long as every dependency comes from crates.io
  # (git dependencies would need cargoLock.outputHashes).
  cargoLock.lockFile = ./Cargo.lock;

  # xtask (the man page and completion generator) is built with the binaries and removed
  # from the output once it has run.
  cargoBuildFlags = [ "--workspace" ];

  nativeBuildInputs = [ installShellFiles ];

  # `cargo test` runs in the sandbox: no network, no KVM, no open-iscsi. Tests that need
  # those (the Debian QEMU runner, interop against tgt/libiscsi) are scripts outside cargo or
  # `#[ignore]`d; the NixOS VM tests (passthru.tests) cover them instead. Two tests need
  # root (a network namespace and a veth pair; a namespace and a loop device): the Debian
  # CI runs them.
  checkFlags = [
    "--skip=defect4_initiator_that_vanishes_idle_is_freed_by_tcp_keepalive"
    "--skip=seed_workflow_with_generated_iqn_default_portal_block_and_mutual_chap"
  ];

  # The generated pages and completions need to run a binary of the host platform (an
  # emulator when cross-compiling); the hand-written page is always installed.
  postInstall =
    let
      xtask = "${stdenv.hostPlatform.emulator buildPackages} $out/bin/xtask";
    in
    lib.optionalString (stdenv.hostPlatform.emulatorAvailable buildPackages) ''
      ${xtask} man --out-dir generated-man
      installManPage generated-man/rustiscsid.8 generated-man/rustiscsi.8
      ${xtask} completions --out-dir generated-completions
      installShellCompletion --cmd rustiscsi \
        --bash generated-completions/rustiscsi.bash \
        --zsh generated-completions/_rustiscsi \
        --fish generated-completions/rustiscsi.fish
      installShellCompletion --cmd rustiscsid \
        --bash generated-completions/rustiscsid.bash \
        --zsh generated-completions/_rustiscsid \
        --fish generated-completions/rustiscsid.fish
    ''
    + ''
      installManPage doc/rustiscsi.toml.5
      rm $out/bin/xtask
    '';

  passthru.tests = lib.mapAttrs (
    _: file:
    testers.runNixOSTest {
      imports = [ file ];
      defaults = {
        imports = [ ./nixos-module/default.nix ];
        services.rustiscsi.package = finalAttrs.finalPackage;
      };
    }
  ) vmTests;

  meta = {
    description = cargoToml.package.description;
    longDescription = ''
      rustiscsi is a userspace iSCSI target (RFC 7143) with SPC/SBC block emulation for NAS
      appliances: rustiscsid serves block devices (md RAID, LVM, disks), sparse files and RAM
      disks to iSCSI initiators, with CHAP and mutual CHAP, LUN masking, persistent
      reservations and configuration reloads that keep sessions up; rustiscsi manages it in
      the spirit of targetcli. The NixOS module services.rustiscsi configures it declaratively.
    '';
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "rustiscsi";
    platforms = lib.platforms.linux;
    maintainers = [ ];
  };
})
