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
in
{
  imports = nas.modules;
  _module.args.pkgs = lib.mkForce pkgs;
}
