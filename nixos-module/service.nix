# What services.rustiscsi sets up (see ./default.nix): the configuration file, the unit and
# its device and network access, the user, tmpfiles for file backstores, the firewall.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  cfg = config.services.rustiscsi;
  mod = import ./lib.nix { inherit lib utils cfg; };

  # Own paths only: the state directory (outside /var/lib, where StateDirectory does not
  # manage it) and each fileio file. Missing parents are created root-owned 0755 by
  # systemd-tmpfiles; existing directories are never touched - a file directly in /var/lib
  # or /srv must not hand those directories to the service.
  tmpfilesRules =
    lib.optionalAttrs (!mod.stateDirIsDefaultLocation) {
      ${cfg.stateDir}.d = {
        user = "rustiscsi";
        group = "rustiscsi";
        mode = "0750";
      };
    }
    // lib.genAttrs mod.fileioFiles (_: {
      f = {
        user = "rustiscsi";
        group = "rustiscsi";
        mode = "0600";
      };
    });

  modprobeUnits = map (m: "modprobe@${m}.service") cfg.deviceModules;
in
{
  config = lib.mkIf cfg.enable {
    environment.systemPackages = [ cfg.package ];

    environment.etc."rustiscsi/rustiscsi.toml".source = cfg.configFile;

    networking.firewall = lib.mkIf cfg.openFirewall (
      if cfg.firewallInterfaces == [ ] then
        { allowedTCPPorts = mod.ports; }
      else
        { interfaces = lib.genAttrs cfg.firewallInterfaces (_: { allowedTCPPorts = mod.ports; }); }
    );

    users.users.rustiscsi = {
      isSystemUser = true;
      group = "rustiscsi";
      # Block devices (md, dm, sd, nvme) are root:disk 0660.
      extraGroups = [ "disk" ];
      description = "rustiscsi iSCSI target daemon";
    };
    users.groups.rustiscsi = { };

    systemd.tmpfiles.settings."10-rustiscsi" = tmpfilesRules;

    # Kept out of rustiscsi.service so that a new block LUN changes only this unit and the
    # daemon is reloaded, not restarted, by switch-to-configuration.
    systemd.targets.rustiscsi-backstores = {
      description = "Block devices served by rustiscsi";
      wants = mod.deviceUnits;
      after = mod.deviceUnits;
    };

    systemd.services.rustiscsi = {
      description = "rustiscsi userspace iSCSI target";
      wantedBy = [ "multi-user.target" ];
      # The drivers of the device groups below are loaded before the unit starts, when
      # systemd resolves DeviceAllow=block-<group> (see deviceModules).
      wants = [
        "network-online.target"
        "rustiscsi-backstores.target"
      ]
      ++ modprobeUnits;
      after = [
        "network-online.target"
        "rustiscsi-backstores.target"
      ]
      ++ modprobeUnits;
      # Only the TOML changed: SIGHUP, sessions stay up.
      reloadTriggers = [ cfg.configFile ];

      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = utils.escapeSystemdExecArgs [
          (lib.getExe' cfg.package "rustiscsid")
          "--config"
          mod.configPath
          "--log"
          cfg.logLevel
        ];
        ExecReload = "${lib.getExe' pkgs.coreutils "kill"} -HUP $MAINPID";
        Restart = "on-failure";
        RestartSec = "2s";
        WatchdogSec = "30s";
        TimeoutStopSec = "60s";

        User = "rustiscsi";
        Group = "rustiscsi";
        LoadCredential = map (f: "${mod.credentialId f}:${f}") mod.secretFiles;
        StateDirectory = lib.mkIf mod.stateDirIsDefaultLocation (lib.removePrefix "/var/lib/" cfg.stateDir);
        StateDirectoryMode = "0750";
        RuntimeDirectory = "rustiscsi";
        RuntimeDirectoryMode = "0750";
        # The fileio files themselves (not their directories), and a state dir outside /var/lib.
        ReadWritePaths = mod.fileioFiles ++ lib.optional (!mod.stateDirIsDefaultLocation) cfg.stateDir;
        LimitNOFILE = 65536;

        # Port 3260 < 1024.
        AmbientCapabilities = [ "CAP_NET_BIND_SERVICE" ];
        CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" ];

        # Block devices must stay visible: no PrivateDevices, an allow-list of device groups
        # instead (virtblk: virtio disks; blkext: NVMe and partitions beyond the static range).
        DevicePolicy = "closed";
        DeviceAllow = map (g: "block-${g} rw") (lib.attrNames mod.deviceGroups) ++ cfg.extraDeviceAllow;

        # When every target restricts its initiators' networks, the unit talks to nothing else.
        IPAddressAllow = lib.mkIf (mod.allowedAddresses != null) mod.allowedAddresses;
        IPAddressDeny = lib.mkIf (mod.allowedAddresses != null) "any";

        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        # No ProcSubset = "pid": `rustiscsi status` reports memory and load from /proc.
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        RemoveIPC = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        UMask = "0077";
      };
    };
  };
}
