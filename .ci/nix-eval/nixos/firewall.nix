# Restated from nixpkgs nixos/modules/services/networking/firewall.nix (stored version
# 0192bb84): the incoming-port options, globally and per interface. The rest of
# networking.firewall stays nix-eval's loose declaration.
{ lib, ... }:
let
  inherit (lib) mkOption types;
  canonicalizePortList = ports: lib.unique (builtins.sort builtins.lessThan ports);
  portOptions = {
    allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
      apply = canonicalizePortList;
      description = "TCP ports on which incoming connections are accepted.";
    };
    allowedTCPPortRanges = mkOption {
      type = types.listOf (types.attrsOf types.port);
      default = [ ];
      description = "TCP port ranges on which incoming connections are accepted.";
    };
    allowedUDPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
      apply = canonicalizePortList;
      description = "UDP ports on which incoming packets are accepted.";
    };
    allowedUDPPortRanges = mkOption {
      type = types.listOf (types.attrsOf types.port);
      default = [ ];
      description = "UDP port ranges on which incoming packets are accepted.";
    };
  };
in
{
  options.networking.firewall = portOptions // {
    enable = mkOption {
      type = types.bool;
      default = true;
      description = "Whether to enable the firewall.";
    };
    trustedInterfaces = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Interfaces whose incoming traffic is accepted unconditionally.";
    };
    interfaces = mkOption {
      type = types.attrsOf (types.submodule [ { options = portOptions; } ]);
      default = { };
      description = "Interface-specific open ports.";
    };
  };
}
