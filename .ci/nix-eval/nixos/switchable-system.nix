# Restated from nixpkgs nixos/modules/system/activation/switchable-system.nix: the switch
# (the VM test base sets it, see ../testing/test-instrumentation.nix).
{ lib, ... }:
{
  options.system.switch.enable = lib.mkOption {
    type = lib.types.bool;
    default = true;
    description = "Whether to include the capability to switch configurations.";
  };
}
