# Options of services.rustiscsi (see ./default.nix). Option names are camelCase; each maps to
# the snake_case key of the daemon's TOML (src/config/mod.rs, rustiscsi.toml(5)).
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkPackageOption
    types
    literalExpression
    literalMD
    ;

  cfg = config.services.rustiscsi;
  mod = import ./lib.nix { inherit lib utils cfg; };
  settingsFormat = pkgs.formats.toml { };

  rawConfigFile = settingsFormat.generate "rustiscsi.toml" mod.finalSettings;

  # `rustiscsid --check` is pure (reads neither secrets nor devices), so it runs in the sandbox.
  checkedConfigFile =
    if cfg.checkConfig then
      pkgs.runCommand "rustiscsi-checked.toml"
        {
          nativeBuildInputs = [ cfg.package ];
          configToml = rawConfigFile;
          preferLocalBuild = true;
        }
        ''
          rustiscsid --check --config "$configToml"
          cp "$configToml" "$out"
        ''
    else
      rawConfigFile;

  # ------------------------------------------------------------------ option types

  chapOption =
    what:
    mkOption {
      type = types.nullOr (
        types.submodule {
          options = {
            user = mkOption {
              type = types.nonEmptyStr;
              example = "client1";
              description = "CHAP user name (CHAP_N).";
            };
            passwordFile = mkOption {
              type = types.externalPath;
              example = "/run/secrets/iscsi/client1";
              description = ''
                File holding the CHAP secret (a trailing newline is ignored). It is passed to the
                service with systemd `LoadCredential`, so it may be readable by root only; it is
                never copied to the Nix store. Use 12 to 16 characters for interoperability with
                initiators that only do MD5 CHAP (the daemon warns otherwise). Credentials are
                copied when the service starts: after changing the file's content, restart
                rustiscsi.service.
              '';
            };
          };
        }
      );
      default = null;
      example = literalExpression ''
        {
          user = "client1";
          passwordFile = "/run/secrets/iscsi/client1";
        }
      '';
      description = what;
    };

  backstoreModule =
    { name, ... }:
    {
      options = {
        kind = mkOption {
          type = types.enum [
            "block"
            "fileio"
            "ramdisk"
          ];
          example = "block";
          description = ''
            Where the blocks live: `block` (md array, LVM volume, disk), `fileio` (a regular file,
            created sparse when missing) or `ramdisk` (memory, lost when the daemon stops).
          '';
        };
        path = mkOption {
          type = types.nullOr types.externalPath;
          default = null;
          example = "/dev/md/nas0";
          description = ''
            Device (`block`) or file (`fileio`) path; must be unset for `ramdisk`. Prefer stable
            names: `/dev/md/<name>`, `/dev/<vg>/<lv>`, `/dev/disk/by-id/...`. The service waits
            for block devices to appear (via `rustiscsi-backstores.target`). A `fileio` file is
            created by systemd-tmpfiles (missing parent directories root-owned, 0755), owned by
            the service user (mode 0600) and made writable for the service; its directory is
            neither taken over nor made writable, so `/var/lib/vm.img` is fine.
          '';
        };
        size = mkOption {
          type = types.nullOr mod.sizeType;
          default = null;
          example = "100G";
          description = ''
            Size, required for `ramdisk`; a `fileio` file is created (sparse) or grown to it.
            Block devices report their own size.
          '';
        };
        blockSize = mkOption {
          type = types.nullOr (
            types.enum [
              512
              4096
            ]
          );
          default = null;
          description = ''
            Logical block size of `fileio` and `ramdisk` backstores (the daemon's default is 512).
            Block devices report their own.
          '';
        };
        writeCache = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Write-back caching (writes land in the page cache; FUA and SYNCHRONIZE CACHE flush).
            Off means write-through.
          '';
        };
        cache = mkOption {
          type = types.nullOr (
            types.enum [
              "direct"
              "buffered"
            ]
          );
          default = null;
          description = ''
            How I/O reaches the file or device: `direct` (O_DIRECT, bypassing the host's page
            cache) or `buffered`. Null keeps the daemon's default: direct for `block`, buffered
            for `fileio`. Not for `ramdisk`.
          '';
        };
        serial = mkOption {
          type = types.nullOr (mod.asciiField 254);
          default = null;
          example = "NAS0-0001";
          description = ''
            Pinned unit serial number (VPD page 0x80). Null: derived once and kept in
            {option}`services.rustiscsi.stateDir`.
          '';
        };
        wwn = mkOption {
          type = types.nullOr mod.wwnType;
          default = null;
          example = "naa.6001405c0ffee0000000000000000001";
          description = ''
            Pinned NAA designator (VPD page 0x83). Null: derived once and kept in
            {option}`services.rustiscsi.stateDir`. Pin it when an initiator (multipath, a
            cluster) must keep recognising the LUN after the state directory is lost.
          '';
        };
        vendor = mkOption {
          type = types.nullOr (mod.asciiField 8);
          default = null;
          example = "NAS";
          description = "T10 vendor identification in the INQUIRY data (null: the daemon's).";
        };
        product = mkOption {
          type = types.nullOr (mod.asciiField 16);
          default = null;
          example = "RAID1 array";
          description = "Product identification in the INQUIRY data (null: the daemon's).";
        };
      };
    };

  lunModule = {
    options = {
      lun = mkOption {
        type = types.nullOr mod.lunNumber;
        default = null;
        description = ''
          LUN number on the target; defaults to the position in the list. Set it whenever the
          list is defined in more than one module (a specialisation, a second file): the module
          system concatenates the definitions in an order you do not choose (a
          specialisation's entries come first), and positions would move.
        '';
      };
      backstore = mkOption {
        type = types.nonEmptyStr;
        example = "nas0";
        description = "Name of a backstore in {option}`services.rustiscsi.backstores`.";
      };
    };
  };

  mappedLunModule = {
    options = {
      lun = mkOption {
        type = mod.lunNumber;
        description = "LUN number the initiator sees.";
      };
      targetLun = mkOption {
        type = types.nullOr mod.lunNumber;
        default = null;
        description = "Target LUN behind it; defaults to {option}`lun`.";
      };
      readOnly = mkOption {
        type = types.bool;
        default = false;
        description = "Refuse writes (DATA PROTECT) and report the LUN write-protected.";
      };
    };
  };

  aclModule = {
    options = {
      mappedLuns = mkOption {
        type = types.listOf (types.submodule mappedLunModule);
        default = [ ];
        example = literalExpression ''
          [
            { lun = 0; }
            { lun = 1; readOnly = true; }
          ]
        '';
        description = ''
          LUNs this initiator sees. Empty means every LUN of the target, same numbers, read-write.
        '';
      };
      chap = chapOption "CHAP the initiator must answer (overrides the target's {option}`auth.chap`).";
      mutualChap = chapOption "Credentials the target answers with (mutual CHAP); needs {option}`chap`.";
      allowedNetworks = mkOption {
        type = types.listOf mod.cidrType;
        default = [ ];
        example = [ "192.168.10.0/24" ];
        description = "Source networks this initiator may log in from; empty means any.";
      };
    };
  };

  targetModule =
    { name, ... }:
    {
      options = {
        tpg = mkOption {
          type = types.ints.between 1 65535;
          default = 1;
          description = "Target portal group tag.";
        };
        luns = mkOption {
          type = types.listOf (types.submodule lunModule);
          default = [ ];
          example = literalExpression ''
            [
              { backstore = "nas0"; }
              { lun = 1; backstore = "vm1"; }
            ]
          '';
          description = "The target's LUNs.";
        };
        demoMode = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Let any initiator log in and see every LUN read-write, without ACLs. On a portal that
            is not loopback this also needs {option}`services.rustiscsi.allowDemoModeOnNetwork`.
          '';
        };
        allowedNetworks = mkOption {
          type = types.listOf mod.cidrType;
          default = [ ];
          example = [ "192.168.10.0/24" ];
          description = "Source networks allowed to log in to this target; empty means any.";
        };
        auth = {
          chap = chapOption "Target-wide CHAP for ACLs that set none (and for demo mode).";
          mutualChap = chapOption "Target-wide mutual CHAP for ACLs that set none; needs {option}`auth.chap`.";
        };
        acls = mkOption {
          type = types.attrsOf (types.submodule aclModule);
          default = { };
          example = literalExpression ''
            {
              "iqn.2005-03.org.open-iscsi:client1" = {
                mappedLuns = [ { lun = 0; } ];
                chap = { user = "client1"; passwordFile = "/run/secrets/iscsi/client1"; };
              };
            }
          '';
          description = "Node ACLs by initiator name (IQN).";
        };
      };
    };

  nullOrOpt =
    type: description:
    mkOption {
      type = types.nullOr type;
      default = null;
      inherit description;
    };


in
{
  options.services.rustiscsi = {
    enable = mkEnableOption "rustiscsi, the userspace iSCSI target";

    package = mkPackageOption pkgs "rustiscsi" { };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the TCP ports of {option}`services.rustiscsi.portals` in the firewall.";
    };

    portals = mkOption {
      type = types.nonEmptyListOf mod.portalType;
      default = [ "0.0.0.0:3260" ];
      example = [
        "192.168.10.5:3260"
        "[::]:3260"
      ];
      description = "Addresses the target listens on (`IP:port`; IPv6 as `[addr]:port`).";
    };

    stateDir = mkOption {
      type = types.externalPath;
      default = "/var/lib/rustiscsi";
      description = ''
        Where stable LUN identities (serial numbers, NAA designators) and persistent reservations
        are kept. Losing it changes the identity of every LUN as initiators see it. Under
        /var/lib it is managed with systemd `StateDirectory`; elsewhere it is created with
        tmpfiles and made writable for the service.
      '';
    };

    allowDemoModeOnNetwork = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Permit targets with `demoMode = true` on portals that are not loopback: any initiator that
        can reach the portal may then read and write their LUNs.
      '';
    };

    metricsListen = mkOption {
      type = types.nullOr mod.portalType;
      default = null;
      example = "127.0.0.1:9755";
      description = "Address of the Prometheus text endpoint; off when null. Not opened in the firewall.";
    };

    checkConfig = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Check the generated file with `rustiscsid --check` at build time. Turn off when
        cross-compiling (the check runs the target's binary on the build machine).
      '';
    };

    logLevel = mkOption {
      type = types.nonEmptyStr;
      default = "info";
      example = "info,rustiscsi::server=debug";
      description = ''
        Log filter of the daemon (`rustiscsid --log`, tracing `EnvFilter` syntax): `error`,
        `warn`, `info`, `debug`, `trace`, or per-module directives. Logs go to the journal.
        A change restarts the daemon.
      '';
    };

    firewallInterfaces = mkOption {
      type = types.listOf types.nonEmptyStr;
      default = [ ];
      example = [ "enp3s0" ];
      description = ''
        With {option}`openFirewall`: open the portal ports on these interfaces only
        (`networking.firewall.interfaces.<name>.allowedTCPPorts`) instead of on all of them.
      '';
    };

    extraAllowedAddresses = mkOption {
      type = types.listOf mod.cidrType;
      default = [ ];
      example = [ "192.168.20.7/32" ];
      description = ''
        Added to the unit's `IPAddressAllow=` when that is derived from `allowedNetworks`
        (every target restricts its initiators' networks): e.g. the Prometheus server of
        {option}`metricsListen`. Loopback is always allowed.
      '';
    };

    extraDeviceAllow = mkOption {
      type = types.listOf mod.deviceAllowType;
      default = [ ];
      example = [
        "/dev/sg3 rw"
        "block-sr r"
      ];
      description = ''
        Entries added to the unit's `DeviceAllow=`, for devices outside the block device
        groups the module allows (md, device-mapper, sd, virtblk, blkext, loop, nbd, rbd,
        drbd, bcache, zvol, mmc). The device policy stays `closed`.
      '';
    };

    deviceModules = mkOption {
      type = types.listOf types.nonEmptyStr;
      default = mod.defaultDeviceModules;
      defaultText = literalMD ''
        `md_mod`, `dm_mod`, `loop`, `sd_mod`, plus the driver a block backstore path names
        (`/dev/nbd*`: `nbd`, `/dev/rbd*`: `rbd`, `/dev/drbd*`: `drbd`, `/dev/bcache*`:
        `bcache`, `/dev/mmcblk*`: `mmc_block`, `/dev/vd*`: `virtio_blk`)
      '';
      description = ''
        Kernel modules loaded (`modprobe@<module>.service`, wanted and ordered before
        rustiscsi.service) before the daemon starts. systemd resolves the unit's
        `DeviceAllow=block-<group>` entries when the unit starts: a device group whose driver
        is loaded later (an md array assembled after boot, a first NBD device) is missing
        from the unit's device filter and its LUNs get EPERM until a restart. A change of
        this list restarts the daemon. Add the driver of devices the module cannot tell from
        their path (e.g. `/dev/disk/by-id/...` on NBD).
      '';
    };

    limits = {
      maxConnections = nullOrOpt (types.ints.between 1 4294967295) "Connections of normal sessions (full feature phase) at most; logins beyond it are refused. Null: the daemon's default (256).";
      maxLoginConnections = nullOrOpt (types.ints.between 1 4294967295) "Connections still in the login phase at most; the oldest is closed to admit a new one. Null: the daemon's default (64).";
      maxDiscoverySessions = nullOrOpt (types.ints.between 1 4294967295) "Discovery sessions at most; the oldest is closed to admit a new one. Null: the daemon's default (32).";
      loginTimeoutSecs = nullOrOpt (types.ints.between 1 4294967295) "Seconds a connection may take to finish its login. Null: the daemon's default (15).";
      pduTimeoutSecs = nullOrOpt (types.ints.between 1 4294967295) "Seconds within which a PDU that started to arrive must be complete. Null: the daemon's default (15).";
      sendTimeoutSecs = nullOrOpt (types.ints.between 1 4294967295) "Seconds without send progress before a connection is closed (also its TCP user timeout). Null: the daemon's default (30).";
      tcpKeepaliveSecs = nullOrOpt types.ints.u32 "Idle seconds before the first TCP keepalive probe; 0 turns keepalive off. Null: the daemon's default (30).";
      nopIntervalSecs = nullOrOpt types.ints.u32 "Seconds of silence before the target pings the initiator (NOP-In); 0 = never. Null: the daemon's default (10).";
      nopTimeoutSecs = nullOrOpt types.ints.u32 "Seconds to wait for the ping's answer. Null: the daemon's default (15).";
      authFailuresPerMinute = nullOrOpt types.ints.u32 "Failed authentications per source address per minute before its logins are refused. Null: the daemon's default (10).";
      bufferMemory = nullOrOpt mod.sizeType ''Memory for command data buffers of all sessions together ("1G"). Null: the daemon's default (1G).'';
      sessionBufferMemory = nullOrOpt mod.sizeType ''The same budget for one session, at least 64M and at most bufferMemory. Null: the daemon's default (128M).'';
    };

    iscsi = {
      maxRecvDataSegmentLength = nullOrOpt (types.ints.between 512 16777215) "MaxRecvDataSegmentLength the target declares; null keeps the daemon's default (262144).";
      maxBurstLength = nullOrOpt (types.ints.between 512 16777215) "Upper bound for MaxBurstLength; null keeps the daemon's default (1048576).";
      firstBurstLength = nullOrOpt (types.ints.between 512 16777215) "Upper bound for FirstBurstLength; null keeps the daemon's default (262144).";
      maxOutstandingR2T = nullOrOpt (types.ints.between 1 65535) "Upper bound for MaxOutstandingR2T; null keeps the daemon's default (8).";
      immediateData = nullOrOpt types.bool "Offer ImmediateData=Yes; null keeps the daemon's default (true).";
      initialR2T = nullOrOpt types.bool "Require InitialR2T=Yes; null keeps the daemon's default (false).";
      queueDepth = nullOrOpt types.ints.positive "Commands an initiator may have outstanding (CmdSN window); null keeps the daemon's default (128).";
      headerDigest = nullOrOpt (types.nonEmptyListOf (
        types.enum [
          "None"
          "CRC32C"
        ]
      )) ''Header digests accepted, in preference order; null keeps the daemon's default ([ "None" "CRC32C" ]).'';
      dataDigest = nullOrOpt (types.nonEmptyListOf (
        types.enum [
          "None"
          "CRC32C"
        ]
      )) ''Data digests accepted, in preference order; null keeps the daemon's default ([ "None" "CRC32C" ]).'';
    };

    discovery = {
      chap = chapOption "CHAP for discovery (SendTargets) sessions; none when null.";
      mutualChap = chapOption "Mutual CHAP for discovery sessions; needs {option}`discovery.chap`.";
    };

    backstores = mkOption {
      type = types.attrsOf (types.submodule backstoreModule);
      default = { };
      example = literalExpression ''
        {
          nas0 = { kind = "block"; path = "/dev/md/nas0"; };
          vm1 = { kind = "fileio"; path = "/srv/iscsi/vm1.img"; size = "100G"; };
        }
      '';
      description = "Storage objects by name.";
    };

    targets = mkOption {
      type = types.attrsOf (types.submodule targetModule);
      default = { };
      example = literalExpression ''
        {
          "iqn.2026-11.org.example.nas:storage" = {
            luns = [ { backstore = "nas0"; } { backstore = "vm1"; } ];
            acls."iqn.2005-03.org.open-iscsi:client1" = {
              mappedLuns = [ { lun = 0; } { lun = 1; readOnly = true; } ];
              chap = { user = "client1"; passwordFile = "/run/secrets/iscsi/client1"; };
              mutualChap = { user = "nas"; passwordFile = "/run/secrets/iscsi/nas"; };
            };
          };
        }
      '';
      description = "Targets by IQN.";
    };

    settings = mkOption {
      type = types.submodule { freeformType = settingsFormat.type; };
      default = { };
      example = literalExpression ''
        {
          # a daemon key added after this module was written
          daemon.some_new_key = 1;
        }
      '';
      description = ''
        Raw rustiscsi.toml settings (snake_case keys, see rustiscsi.toml(5)) added to what the
        typed options generate, for keys that have no typed option yet. It may not touch what
        the module derives the unit from - `daemon.portals`, `daemon.state_dir`,
        `daemon.control_socket`, `daemon.managed_by`, `daemon.allow_demo_mode_on_network`,
        `daemon.metrics_listen`, `discovery`, `backstores`, `targets` - nor a key that a
        typed option also sets: both are refused by assertions, so the firewall, the
        credentials, the device access and the checks always agree with the file. Unknown
        keys are refused by the build-time check.
      '';
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = checkedConfigFile;
      defaultText = literalMD "the generated file, checked with `rustiscsid --check`";
      description = ''
        The generated rustiscsi.toml (read-only). It is installed as ${mod.configPath}, which the
        service reads; a change reloads the daemon instead of restarting it.
      '';
    };
  };
}
