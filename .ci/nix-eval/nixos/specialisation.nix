# Restated from nixpkgs nixos/modules/system/activation/specialisation.nix and
# no-clone.nix: `specialisation.<name>.configuration` is the whole system extended with
# that module (extendModules), with nested specialisations removed. inheritParentConfig =
# false (a system built from nothing but the base modules) is not restated and fails here.
{ lib, extendModules, ... }:
let
  inherit (lib) mkOption types;
  noClone = {
    boot.loader.grub.device = lib.mkOverride 0 "nodev";
    specialisation = lib.mkOverride 0 { };
    isSpecialisation = lib.mkOverride 0 true;
  };
in
{
  options = {
    isSpecialisation = mkOption {
      type = types.bool;
      internal = true;
      default = false;
      description = "Whether this system is a specialisation of another.";
    };
    specialisation = mkOption {
      default = { };
      description = "Additional configurations to build (see nixpkgs' specialisation.nix).";
      type = types.attrsOf (
        types.submodule (
          local@{ ... }:
          {
            options.inheritParentConfig = mkOption {
              type = types.bool;
              default = true;
              description = "Include the entire system's configuration.";
            };
            options.configuration = mkOption {
              default = { };
              visible = "shallow";
              description = "Arbitrary NixOS configuration.";
              type =
                if local.config.inheritParentConfig then
                  (extendModules { modules = [ noClone ]; }).type
                else
                  throw "nix-eval stub: specialisation with inheritParentConfig = false is not restated";
            };
          }
        )
      );
    };
  };
}
