# nixosConfigurations.nas exactly as flake.nix assembles it (the modules it passes to
# nixpkgs.lib.nixosSystem), with the flake evaluated against a stand-in for its nixpkgs
# input whose package sets must not be used by the module: a NixOS configuration brings its
# own pkgs (its nixpkgs, overlays, cross settings), so the flake's module has to build the
# package from those. The configuration's pkgs here are nix-eval's fake pkgs plus
# callPackage, rustPlatform and testers, enough to evaluate package.nix.
{ lib, modulesPath, ... }:
let
  fake =
    (import (modulesPath + "/../../fake-pkgs.nix") {
      inherit lib;
      hostSystem = "x86_64-linux";
    }).pkgs;
  drv =
    name: extra:
    {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}";
      drvPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" "${name}.drv")}-${name}.drv";
    }
    // extra;
  pkgs = fake // {
    callPackage =
      f: args:
      let
        fn = if lib.isFunction f then f else import f;
      in
      fn (builtins.intersectAttrs (builtins.functionArgs fn) pkgs // args);
    buildPackages = pkgs;
    installShellFiles = drv "install-shell-files" { };
    rustPlatform.buildRustPackage =
      f:
      let
        attrs = if lib.isFunction f then f final else f;
        final = attrs // {
          finalPackage = package;
        };
        package = drv "${attrs.pname}-${attrs.version}" (
          {
            inherit (attrs) pname version meta;
            passthru = attrs.passthru or { };
          }
          // attrs.passthru or { }
        );
      in
      package;
    testers = fake.testers or { } // {
      runNixOSTest = m: {
        nixEvalTest = m;
      };
    };
  };

  nixpkgsInput = {
    outPath = "/nix-eval/flake-input-nixpkgs";
    lib = lib // {
      nixosSystem = args: { nixEvalNixosSystemArgs = args; };
    };
    legacyPackages = throw "flake.nix: the NixOS module (or nixosConfigurations.nas) uses the flake's own nixpkgs input (legacyPackages / self.packages) instead of the configuration's pkgs";
  };
  flake = import ../../../flake.nix;
  outputs = flake.outputs {
    self = outputs // {
      outPath = toString ../../..;
    };
    nixpkgs = nixpkgsInput;
  };
  nas = outputs.nixosConfigurations.nas.nixEvalNixosSystemArgs;
  vmTestFiles = lib.filter (f: lib.hasSuffix ".nix" f && f != "common.nix") (
    lib.attrNames (builtins.readDir ../../../vm-tests)
  );
in
{
  imports = nas.modules;
  _module.args.pkgs = lib.mkForce pkgs;

  # What flake.nix and package.nix promise about the package.
  assertions =
    let
      p = outputs.nixosModules.default;
      package = (p { inherit lib pkgs; }).services.rustiscsi.package.content;
      overlaid = (outputs.overlays.default pkgs pkgs).rustiscsi;
      tests = package.passthru.tests;
      meta = package.meta;
    in
    [
      {
        assertion = overlaid.name == package.name;
        message = "[flake] overlays.default does not give the module's package";
      }
      {
        assertion = lib.attrNames tests == map (f: "vm-${lib.removeSuffix ".nix" f}") vmTestFiles;
        message = "[flake] package.passthru.tests (${toString (lib.attrNames tests)}) are not the VM tests of vm-tests/ (${toString vmTestFiles})";
      }
      {
        assertion = lib.all (t: t ? nixEvalTest && t.nixEvalTest.defaults.services.rustiscsi.package == package) (lib.attrValues tests);
        message = "[flake] package.passthru.tests do not run runNixOSTest with this package";
      }
      {
        assertion = lib.all (k: meta ? ${k}) [ "description" "longDescription" "license" "mainProgram" "platforms" "maintainers" ];
        message = "[flake] package.meta lacks one of description, longDescription, license, mainProgram, platforms, maintainers";
      }
    ];
}
