# The appliance as the flake builds nixosConfigurations.nas-aarch64-linux: images/nas.nix
# with nixpkgs.hostPlatform = "aarch64-linux", hence an aarch64 package set (nix-eval's fake
# pkgs, rebuilt for that platform; check.sh's own pkgs follow SYSTEM_PLATFORM).
{ lib, modulesPath, ... }:
{
  imports = [ ../../../images/nas.nix ];
  nixpkgs.hostPlatform = "aarch64-linux";
  _module.args.pkgs = lib.mkForce
    (import (modulesPath + "/../../fake-pkgs.nix") {
      inherit lib;
      hostSystem = "aarch64-linux";
    }).pkgs;
}
