# Project invariants for the offline evaluation (nix-eval/check.sh --stubs): properties every
# configuration the project evaluates must have - the module's examples, the appliance and
# its image variants, the VM-test nodes. A violation is a failed assertion named
# "[invariant]". Each names the issue it guards (issue 11 of this round).
{
  config,
  lib,
  options,
  pkgs,
  modulesPath,
  ...
}:
let
  cfg = config.services.rustiscsi;
  on = cfg.enable or false;
  systemMode = builtins.pathExists (modulesPath + "/module-list.nix");
  # A node of a NixOS VM test (qemu-vm.nix is imported), not a machine of its own.
  vmNode = options ? virtualisation && options.virtualisation ? qemu;
  svc = config.systemd.services.rustiscsi or { };
  sc = svc.serviceConfig or { };
  asList = v: if lib.isList v then v else [ v ];

  check = assertion: message: {
    inherit assertion;
    message = "[invariant] ${message}";
  };

  # ---- the TOML the daemon reads (fake pkgs keep the value; real nixpkgs: skipped)
  tomlOf =
    f:
    let
      c = f.__stubContent or null;
    in
    if c == null then
      null
    else if (c.format or null) == "toml" then
      c.value
    else if c ? env && c.env ? configToml then
      tomlOf c.env.configToml
    else
      null;
  toml = if on then tomlOf cfg.configFile else null;
  collectPasswordFiles =
    v:
    if lib.isAttrs v then
      lib.optional (v ? password_file) v.password_file
      ++ lib.concatMap collectPasswordFiles (lib.attrValues (removeAttrs v [ "password_file" ]))
    else if lib.isList v then
      lib.concatMap collectPasswordFiles v
    else
      [ ];
  credDir = "/run/credentials/rustiscsi.service/";
  credIds = map (e: lib.head (lib.splitString ":" e)) (asList (sc.LoadCredential or [ ]));
  typedPaths = lib.mapAttrs (_: b: if b.path == null then null else toString b.path) cfg.backstores;
  tomlPaths = lib.mapAttrs (_: b: b.path or null) (toml.backstores or { });

  tomlChecks = lib.optionals (toml != null) [
    (check (toml.daemon.portals or null == cfg.portals)
      "the TOML's daemon.portals ${builtins.toJSON (toml.daemon.portals or null)} differ from services.rustiscsi.portals ${builtins.toJSON cfg.portals}, from which the firewall and the demo-mode check are computed")
    (check (toml.daemon.state_dir or null == toString cfg.stateDir)
      "the TOML's daemon.state_dir differs from services.rustiscsi.stateDir (StateDirectory/ReadWritePaths are computed from the option)")
    (check (toml.daemon.control_socket or null == "/run/rustiscsi/control.sock")
      "the TOML's daemon.control_socket is not in RuntimeDirectory /run/rustiscsi")
    (check ((toml.daemon.allow_demo_mode_on_network or false) == cfg.allowDemoModeOnNetwork)
      "the TOML's daemon.allow_demo_mode_on_network differs from services.rustiscsi.allowDemoModeOnNetwork (the demo-mode assertion uses the option)")
    (check (tomlPaths == typedPaths)
      "the TOML's backstores ${builtins.toJSON tomlPaths} differ from services.rustiscsi.backstores ${builtins.toJSON typedPaths} (DeviceAllow, device waits, ReadWritePaths and tmpfiles are computed from the options)")
    (check (lib.attrNames (toml.targets or { }) == lib.attrNames cfg.targets)
      "the TOML's targets differ from services.rustiscsi.targets")
  ]
  ++ map (
    f:
    check (lib.hasPrefix credDir f && lib.elem (lib.removePrefix credDir f) credIds)
      "the TOML names the secret ${f}, which is not a credential of rustiscsi.service (LoadCredential ids: ${lib.concatStringsSep ", " credIds})"
  ) (lib.optionals (toml != null) (collectPasswordFiles toml));

  # ---- tmpfiles: only the state dir and the backstore files are rustiscsi's own
  ownPaths =
    [ (toString cfg.stateDir) ]
    ++ lib.mapAttrsToList (_: b: toString b.path) (
      lib.filterAttrs (_: b: b.kind == "fileio" && b.path != null) cfg.backstores
    );
  fileioFiles = lib.drop 1 ownPaths;
  tmpfilesRules = config.systemd.tmpfiles.settings."10-rustiscsi" or { };
  tmpfilesChecks = lib.concatLists (
    lib.mapAttrsToList (
      path: types:
      map (
        type:
        check (
          (path == toString cfg.stateDir && !(lib.elem path fileioFiles))
          || (lib.elem path fileioFiles && lib.elem type [ "f" ])
        ) "systemd.tmpfiles.settings.\"10-rustiscsi\" has `${type} ${path}`: it creates or takes over a directory rustiscsi does not own (only the state dir and the backstore files themselves are its own; /var/lib/vm.img must not chown /var/lib)"
      ) (lib.attrNames types)
    ) tmpfilesRules
  );

  # ---- block devices: every device group a NAS serves from, drivers loaded before the unit
  # starts (systemd resolves block-<group> when the unit starts), and the escape hatch.
  deviceAllow = asList (sc.DeviceAllow or [ ]);
  groups = [ "md" "device-mapper" "sd" "virtblk" "blkext" "loop" "nbd" "rbd" "drbd" "bcache" "zvol" "mmc" ];
  hasGroup = g: lib.any (e: lib.hasPrefix "block-${g} " e) deviceAllow;
  preloaded = m: lib.elem "modprobe@${m}.service" (svc.wants or [ ]) && lib.elem "modprobe@${m}.service" (svc.after or [ ]);
  deviceChecks = lib.optionals on (
    map (g: check (hasGroup g) "rustiscsi.service has no DeviceAllow for block-${g}: LUNs on such devices get EPERM") groups
    ++ map (
      m:
      check (preloaded m) "rustiscsi.service does not want and come after modprobe@${m}.service: systemd resolves the device group when the unit starts, so a later LUN on a device whose driver was not loaded yet gets EPERM"
    ) [ "md_mod" "dm_mod" ]
    ++ map (e: check (lib.elem e deviceAllow) "services.rustiscsi.extraDeviceAllow entry \"${e}\" is not in DeviceAllow") (
      cfg.extraDeviceAllow or [ ]
    )
  );

  # ---- the appliance on real hardware (system configurations that are not VM-test nodes)
  hp = pkgs.stdenv.hostPlatform;
  serialConsole = if hp.isx86 then "ttyS0" else if hp.isAarch then "ttyAMA0" else null;
  consoles = map (p: lib.head (lib.splitString "," (lib.removePrefix "console=" p))) (
    lib.filter (lib.hasPrefix "console=") (config.boot.kernelParams or [ ])
  );
  serialConsoles = lib.filter (c: builtins.match "tty(S|AMA|USB|mxc|PS|MSM)[0-9]+" c != null) consoles;
  initrdModules = config.boot.initrd.availableKernelModules or [ ] ++ config.boot.initrd.kernelModules or [ ];
  bootDisks = [ "usb_storage" "uas" "xhci_pci" "ahci" "sd_mod" "nvme" ];
  # Root is locked and no wheel user exists: a stricter condition than the appliance's own
  # (images/nas.nix), so that each is checked by something it does not share.
  root = config.users.users.root;
  rootLocked =
    root.openssh.authorizedKeys.keys == [ ]
    && root.openssh.authorizedKeys.keyFiles == [ ]
    && (root.hashedPasswordFile or null) == null
    && (root.password or null) == null
    && (root.initialPassword or null) == null
    && lib.elem (root.hashedPassword or null) [ null "!" "*" ]
    && lib.elem (root.initialHashedPassword or null) [ null "!" ];
  wheelUsers = lib.filter (u: u.group == "wheel" || lib.elem "wheel" u.extraGroups) (
    lib.attrValues config.users.users
  );
  noWayIn = rootLocked && wheelUsers == [ ];
  format = if options ? image && options.image ? format then config.image.format else null;
  applianceChecks = lib.optionals (systemMode && on && !vmNode) (
    map (m: check (lib.elem m initrdModules) "the appliance's initrd lacks ${m}: it cannot mount its root from a USB stick, SATA or NVMe disk") bootDisks
    ++ [
      (check (serialConsole == null || serialConsoles != [ ] && lib.last serialConsoles == serialConsole)
        "the appliance's primary serial console is ${builtins.toJSON (lib.last ([ null ] ++ serialConsoles))}; on ${hp.system} it is ${serialConsole}")
      (check (!noWayIn || lib.any (w: lib.hasInfix "no way to log in" w) config.warnings)
        "the appliance has no way in (no SSH key or password for root or a wheel user) and says nothing")
      (check (format != "qcow2" || config.services.qemuGuest.enable)
        "the qcow2 (VM) image does not run the QEMU guest agent, which images/README.md promises")
      (check ((config.services.smartd.enable or false) == (format != "qcow2"))
        "smartd must watch real disks (the system and its raw images) and stay off in the qcow2 VM image (virtual disks have no SMART)")
    ]
  );

  # ---- specialisations are built with the system: their assertions count too
  specialisationChecks = lib.mapAttrsToList (
    name: s:
    let
      failed = map (a: a.message) (lib.filter (a: !a.assertion) s.configuration.assertions);
    in
    check (failed == [ ]) "specialisation ${name}: ${lib.concatStringsSep "; " failed}"
  ) (config.specialisation or { });
in
{
  assertions = tomlChecks ++ tmpfilesChecks ++ deviceChecks ++ applianceChecks ++ specialisationChecks;
}
