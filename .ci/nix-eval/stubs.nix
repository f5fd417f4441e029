# Extra declarations for ../../shared/nix-eval/check.sh (`--stubs`): options NixOS 26.05
# declares that the shared stubs lack, restated from the nixpkgs files named in each file
# below (same names, nesting, types and defaults where they matter).
#
# Only in system mode (check.sh --system/--systems, where `modulesPath` is the directory of
# the shared NixOS stubs): module mode keeps nix-eval's loose declarations, which the
# precise ones here would collide with.
{ lib, modulesPath, ... }:
let
  systemMode = builtins.pathExists (modulesPath + "/module-list.nix");
in
{
  imports = lib.optionals systemMode [
    ./nixos/firewall.nix
    ./nixos/openiscsi.nix
    ./nixos/smartd.nix
    ./nixos/specialisation.nix
    ./nixos/switchable-system.nix
  ];
}
