# One node of a NixOS VM test (vm-tests/<test>.nix) as a system configuration for
# nix-eval/check.sh --system: what `pkgs.testers.runNixOSTest` makes of `nodes.<node>` -
# the node's module, the test's `defaults`, qemu-vm.nix, the test instrumentation and the
# test network (nixpkgs nixos/lib/testing/{nodes,network}.nix: host name = node name,
# eth1 = 192.168.1.<n>/24 with <n> the node's position among the sorted node names).
#
# It also checks the test script against the node: every unit the script waits for on this
# node (`<node>.wait_for_unit("u")`, `<node>.require_unit_state("u", ...)`) must not be
# disabled in the node's configuration - as test-instrumentation.nix does with
# serial-getty@ttyS0 and serial-getty@hvc0.
#
# Usage (a wrapper file per node, written by .ci/nix-check.sh):
#   import .ci/nix-eval/vm-node.nix { test = ./vm-tests/appliance.nix; node = "nas"; }
{ test, node }:
{ config, lib, ... }:
let
  testModule = import test;
  t = if lib.isFunction testModule then testModule { inherit lib; } else testModule;
  names = lib.attrNames t.nodes;
  number = lib.lists.findFirstIndex (n: n == node) (throw "${toString test} has no node ${node}") names + 1;
  address = n: "192.168.1.${toString (lib.lists.findFirstIndex (x: x == n) 0 names + 1)}";

  # What the scripts read from `nodes`: addresses and store paths (placeholders).
  fakeNodes = lib.genAttrs names (n: {
    networking.primaryIPAddress = address n;
    system.build.toplevel = "/nix/store/00000000000000000000000000000000-nixos-system-${n}";
    services.openssh.package = "/nix/store/00000000000000000000000000000000-openssh";
  });
  script =
    if lib.isFunction t.testScript then t.testScript { nodes = fakeNodes; } else t.testScript;

  # <machine>.wait_for_unit("unit" / <machine>.require_unit_state("unit"
  calls = lib.filter lib.isList (
    builtins.split ''([A-Za-z_][A-Za-z0-9_]*)\.(wait_for_unit|require_unit_state)\("([^"]+)"'' script
  );
  waited = lib.unique (map (c: lib.elemAt c 2) (lib.filter (c: lib.head c == node) calls));

  unitState =
    u:
    let
      kinds = {
        service = config.systemd.services;
        target = config.systemd.targets;
        socket = config.systemd.sockets;
      };
      suffix = lib.last (lib.splitString "." u);
      base = lib.removeSuffix ".${suffix}" u;
    in
    if kinds ? ${suffix} && kinds.${suffix} ? ${base} then kinds.${suffix}.${base}.enable or true else true;
in
{
  imports = [
    t.nodes.${node}
    (t.defaults or { })
    ./testing/qemu-vm.nix
    ./testing/test-instrumentation.nix
  ];

  options.virtualisation.test = {
    nodeName = lib.mkOption {
      internal = true;
      default = node;
      description = "The `name` in `nodes.<name>`.";
    };
    nodeNumber = lib.mkOption {
      internal = true;
      type = lib.types.int;
      readOnly = true;
      default = number;
      description = "A unique number for each machine of the test.";
    };
  };

  config = {
    networking.hostName = lib.mkDefault node;
    networking.interfaces.eth1.ipv4.addresses = [
      {
        address = address node;
        prefixLength = 24;
      }
    ];
    networking.primaryIPAddress = address node;

    assertions = map (u: {
      assertion = unitState u;
      message = ''
        ${baseNameOf (toString test)}: the test script waits for ${u} on node ${node}, but the node's
        configuration disables that unit (the NixOS test instrumentation disables
        serial-getty@ttyS0/ttyAMA0 and serial-getty@hvc0: the driver's shell owns those consoles).
      '';
    }) waited;
  };
}
