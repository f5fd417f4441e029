# NixOS module for rustiscsi, the userspace iSCSI target: `services.rustiscsi`.
#
# The typed options below render /etc/rustiscsi/rustiscsi.toml (the daemon's config model,
# src/config/mod.rs; TOML keys are snake_case), `settings` is a freeform escape hatch merged on
# top, and the result is checked at build time with `rustiscsid --check`.
#
# Secrets (`passwordFile`) are never read at evaluation time and never copied to the store: each
# file is handed to the unit with systemd `LoadCredential` and the TOML names its copy under
# /run/credentials/rustiscsi.service/.
#
# Reload, not restart: a configuration change that only alters the TOML reloads the daemon
# (SIGHUP, sessions of unaffected LUNs stay up). Changes to the unit itself restart it: a new
# package, a new or changed `passwordFile` (credentials are copied at start), a fileio backstore in
# a directory not used before (ReadWritePaths). Block devices are waited for through the separate
# `rustiscsi-backstores.target`, so adding a block LUN does not change rustiscsi.service.
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
    mkIf
    types
    literalExpression
    literalMD
    ;

  cfg = config.services.rustiscsi;
  settingsFormat = pkgs.formats.toml { };

  unitName = "rustiscsi";
  credentialsDir = "/run/credentials/${unitName}.service";
  configPath = "/etc/rustiscsi/rustiscsi.toml";
  controlSocket = "/run/rustiscsi/control.sock";

  # ------------------------------------------------------------------ names and formats

  # RFC 3720 §3.2.6.3 / RFC 7143 §4.2.7.2: iqn.<yyyy-mm>.<reversed domain>[:<anything>],
  # eui.<16 hex>, naa.<16 or 32 hex>. iSCSI names are compared in lower case, so upper-case
  # letters are refused rather than silently folded.
  iqnRegex = "iqn[.][0-9]{4}-(0[1-9]|1[0-2])[.][a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[a-z0-9.:-]*)?";
  euiRegex = "eui[.][0-9a-fA-F]{16}";
  naaRegex = "naa[.]([0-9a-fA-F]{16}|[0-9a-fA-F]{32})";
  isIscsiName =
    n:
    lib.stringLength n <= 223
    && lib.any (r: builtins.match r n != null) [
      iqnRegex
      euiRegex
      naaRegex
    ];

  portalRegex = "([0-9]{1,3}([.][0-9]{1,3}){3}|[[][0-9a-fA-F:.]+[]]):[0-9]{1,5}";
  portalType = types.strMatching portalRegex // {
    description = "IP:port socket address (IPv6 in brackets, e.g. [::]:3260)";
  };
  portalPort = p: lib.toInt (lib.last (lib.splitString ":" p));
  portalHost = p: lib.removeSuffix ":${toString (portalPort p)}" p;
  isLoopbackPortal =
    p:
    let
      h = portalHost p;
    in
    lib.hasPrefix "127." h || h == "[::1]";

  cidrType =
    types.strMatching "([0-9]{1,3}([.][0-9]{1,3}){3}|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)/[0-9]{1,3}"
    // {
      description = "network in CIDR notation (e.g. 192.168.10.0/24 or fd00::/64)";
    };

  # Same grammar as the daemon's size parser (src/config/size.rs): binary units.
  sizeType = types.either types.ints.positive (
    types.strMatching "[0-9]+ *([KMGTPkmgtp](iB|B)?|B)?"
    // {
      description = ''size string such as "100G", "512M", "1T" (binary units)'';
    }
  );

  lunNumber = types.ints.between 0 16383;

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
            for block devices to appear (via `rustiscsi-backstores.target`) and gets write access
            to the directory of fileio files.
          '';
        };
        size = mkOption {
          type = types.nullOr sizeType;
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
      };
    };

  lunModule = {
    options = {
      lun = mkOption {
        type = types.nullOr lunNumber;
        default = null;
        description = "LUN number on the target; defaults to the position in the list.";
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
        type = lunNumber;
        description = "LUN number the initiator sees.";
      };
      targetLun = mkOption {
        type = types.nullOr lunNumber;
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
        type = types.listOf cidrType;
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
          type = types.listOf cidrType;
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

  # ------------------------------------------------------------------ rendering

  compact = lib.filterAttrs (_: v: v != null);
  nonEmpty = lib.filterAttrs (_: v: v != { });

  sanitizeId = lib.stringAsChars (c: if builtins.match "[A-Za-z0-9_.-]" c != null then c else "_");
  # One credential per distinct file: `<basename>-<hash of the path>`. Readable, no `:` or `/`,
  # and two paths never share an id.
  credentialId =
    file:
    let
      f = toString file;
    in
    "${sanitizeId (baseNameOf f)}-${builtins.substring 0 8 (builtins.hashString "sha256" f)}";

  renderChap =
    c:
    if c == null then
      null
    else
      {
        inherit (c) user;
        password_file = "${credentialsDir}/${credentialId c.passwordFile}";
      };

  renderAuth =
    a:
    compact {
      chap = renderChap a.chap;
      mutual_chap = renderChap a.mutualChap;
    };

  lunNumbers = t: lib.imap0 (i: l: if l.lun != null then l.lun else i) t.luns;

  renderTarget =
    _: t:
    nonEmpty {
      inherit (t) tpg;
      luns = lib.imap0 (i: l: {
        lun = if l.lun != null then l.lun else i;
        inherit (l) backstore;
      }) t.luns;
      demo_mode = t.demoMode;
      allowed_networks = t.allowedNetworks;
      auth = renderAuth t.auth;
      acls = lib.mapAttrs (
        _: a:
        compact {
          mapped_luns = map (
            m:
            compact {
              inherit (m) lun;
              target_lun = m.targetLun;
              read_only = m.readOnly;
            }
          ) a.mappedLuns;
          chap = renderChap a.chap;
          mutual_chap = renderChap a.mutualChap;
          allowed_networks = a.allowedNetworks;
        }
      ) t.acls;
    };

  renderBackstore =
    _: b:
    compact {
      inherit (b) kind path size;
      block_size = b.blockSize;
      write_cache = b.writeCache;
    };

  generatedSettings = nonEmpty {
    daemon = compact {
      inherit (cfg) portals;
      state_dir = cfg.stateDir;
      control_socket = controlSocket;
      allow_demo_mode_on_network = cfg.allowDemoModeOnNetwork;
      metrics_listen = cfg.metricsListen;
      managed_by = "NixOS option services.rustiscsi";
    };
    iscsi = compact {
      max_recv_data_segment_length = cfg.iscsi.maxRecvDataSegmentLength;
      max_burst_length = cfg.iscsi.maxBurstLength;
      first_burst_length = cfg.iscsi.firstBurstLength;
      max_outstanding_r2t = cfg.iscsi.maxOutstandingR2T;
      immediate_data = cfg.iscsi.immediateData;
      initial_r2t = cfg.iscsi.initialR2T;
      queue_depth = cfg.iscsi.queueDepth;
      header_digest = cfg.iscsi.headerDigest;
      data_digest = cfg.iscsi.dataDigest;
    };
    discovery = renderAuth cfg.discovery;
    backstores = lib.mapAttrs renderBackstore cfg.backstores;
    targets = lib.mapAttrs renderTarget cfg.targets;
  };

  finalSettings = lib.recursiveUpdate generatedSettings cfg.settings;

  rawConfigFile = settingsFormat.generate "rustiscsi.toml" finalSettings;

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

  # ------------------------------------------------------------------ derived facts

  allChaps =
    [
      cfg.discovery.chap
      cfg.discovery.mutualChap
    ]
    ++ lib.concatMap (
      t:
      [
        t.auth.chap
        t.auth.mutualChap
      ]
      ++ lib.concatMap (a: [
        a.chap
        a.mutualChap
      ]) (lib.attrValues t.acls)
    ) (lib.attrValues cfg.targets);
  secretFiles = lib.unique (map (c: toString c.passwordFile) (lib.filter (c: c != null) allChaps));

  backstoresOf = kind: lib.filterAttrs (_: b: b.kind == kind && b.path != null) cfg.backstores;
  blockPaths = lib.unique (lib.mapAttrsToList (_: b: toString b.path) (backstoresOf "block"));
  fileioDirs = lib.unique (lib.mapAttrsToList (_: b: dirOf (toString b.path)) (backstoresOf "fileio"));
  deviceUnits = map (p: "${utils.escapeSystemdPath p}.device") blockPaths;

  stateDirIsDefaultLocation = lib.hasPrefix "/var/lib/" cfg.stateDir;

  ports = lib.unique (map portalPort cfg.portals);

  targetList = lib.mapAttrsToList (name: t: t // { inherit name; }) cfg.targets;
  aclList = lib.concatMap (
    t: lib.mapAttrsToList (name: a: a // { inherit name; target = t.name; }) t.acls
  ) targetList;

  # Every place a (chap, mutualChap) pair can be set, for the "mutual needs one-way" rule.
  authPlaces =
    [
      {
        where = "services.rustiscsi.discovery";
        inherit (cfg.discovery) chap mutualChap;
      }
    ]
    ++ map (t: {
      where = ''services.rustiscsi.targets."${t.name}".auth'';
      inherit (t.auth) chap mutualChap;
    }) targetList
    ++ map (a: {
      where = ''services.rustiscsi.targets."${a.target}".acls."${a.name}"'';
      inherit (a) chap mutualChap;
    }) aclList;

  duplicates = xs: lib.unique (lib.filter (x: lib.count (y: y == x) xs > 1) xs);

  backstoreUses = lib.concatMap (t: map (l: l.backstore) t.luns) targetList;

  nonLoopbackPortals = lib.filter (p: !isLoopbackPortal p) cfg.portals;
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
      type = types.nonEmptyListOf portalType;
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
      type = types.nullOr portalType;
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
          daemon.max_connections = 64;
          iscsi.max_recv_data_segment_length = 1048576;
        }
      '';
      description = ''
        Raw rustiscsi.toml settings (snake_case keys, see the daemon's configuration reference),
        merged over what the typed options generate (`lib.recursiveUpdate`: these win, lists are
        replaced). For keys without a typed option, e.g. `daemon.max_connections`,
        `daemon.login_timeout_secs`, `daemon.nop_interval_secs`, `daemon.auth_failures_per_minute`.
        Unknown keys are rejected by the build-time check.
      '';
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = checkedConfigFile;
      defaultText = literalMD "the generated file, checked with `rustiscsid --check`";
      description = ''
        The generated rustiscsi.toml (read-only). It is installed as ${configPath}, which the
        service reads; a change reloads the daemon instead of restarting it.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions =
      [
        {
          assertion = !(config.services.target.enable or false);
          message = ''
            services.rustiscsi and services.target (the kernel LIO target) both serve iSCSI on
            port 3260; enable only one of them.
          '';
        }
        {
          assertion = duplicates cfg.portals == [ ];
          message = "services.rustiscsi.portals lists ${lib.concatStringsSep ", " (duplicates cfg.portals)} more than once.";
        }
        {
          assertion =
            cfg.iscsi.firstBurstLength == null
            || cfg.iscsi.maxBurstLength == null
            || cfg.iscsi.firstBurstLength <= cfg.iscsi.maxBurstLength;
          message = "services.rustiscsi.iscsi.firstBurstLength must not exceed iscsi.maxBurstLength (RFC 7143 §13.14).";
        }
      ]
      ++ lib.mapAttrsToList (name: b: {
        assertion = (b.kind == "ramdisk") == (b.path == null);
        message =
          if b.kind == "ramdisk" then
            ''services.rustiscsi.backstores."${name}": a ramdisk has no path; remove `path`.''
          else
            ''services.rustiscsi.backstores."${name}": kind "${b.kind}" needs `path`.'';
      }) cfg.backstores
      ++ lib.mapAttrsToList (name: b: {
        assertion = b.kind != "ramdisk" || b.size != null;
        message = ''services.rustiscsi.backstores."${name}": a ramdisk needs `size` (e.g. "1G").'';
      }) cfg.backstores
      ++ map (t: {
        assertion = isIscsiName t.name;
        message = ''
          services.rustiscsi.targets."${t.name}": not a valid iSCSI name. Use
          iqn.YYYY-MM.reversed.domain[:suffix] (lower case), eui.<16 hex> or naa.<16|32 hex>.
        '';
      }) targetList
      ++ map (a: {
        assertion = isIscsiName a.name;
        message = ''
          services.rustiscsi.targets."${a.target}".acls."${a.name}": not a valid initiator name.
          Use iqn.YYYY-MM.reversed.domain[:suffix] (lower case), eui.<16 hex> or naa.<16|32 hex>.
        '';
      }) aclList
      ++ lib.concatMap (
        t:
        map (l: {
          assertion = cfg.backstores ? ${l.backstore};
          message = ''
            services.rustiscsi.targets."${t.name}".luns: backstore "${l.backstore}" is not defined in
            services.rustiscsi.backstores (defined: ${lib.concatStringsSep ", " (lib.attrNames cfg.backstores)}).
          '';
        }) t.luns
      ) targetList
      ++ map (t: {
        assertion = duplicates (lunNumbers t) == [ ];
        message = ''services.rustiscsi.targets."${t.name}".luns: LUN number(s) ${
          lib.concatMapStringsSep ", " toString (duplicates (lunNumbers t))
        } used more than once (a LUN without `lun` takes its position in the list).'';
      }) targetList
      ++ lib.concatMap (
        a:
        let
          t = cfg.targets.${a.target};
        in
        map (
          m:
          let
            tl = if m.targetLun != null then m.targetLun else m.lun;
          in
          {
            assertion = lib.elem tl (lunNumbers t);
            message = ''
              services.rustiscsi.targets."${a.target}".acls."${a.name}".mappedLuns: LUN ${toString m.lun}
              maps target LUN ${toString tl}, which the target does not have (it has: ${
                lib.concatMapStringsSep ", " toString (lunNumbers t)
              }).
            '';
          }
        ) a.mappedLuns
      ) aclList
      ++ map (a: {
        assertion = duplicates (map (m: m.lun) a.mappedLuns) == [ ];
        message = ''services.rustiscsi.targets."${a.target}".acls."${a.name}".mappedLuns: a LUN number is mapped twice.'';
      }) aclList
      ++ map (p: {
        assertion = p.mutualChap == null || p.chap != null;
        message = "${p.where}: mutualChap needs chap (the initiator must authenticate before the target does).";
      }) authPlaces
      ++ map (t: {
        assertion = !t.demoMode || cfg.allowDemoModeOnNetwork || nonLoopbackPortals == [ ];
        message = ''
          services.rustiscsi.targets."${t.name}".demoMode lets any initiator read and write its LUNs,
          and the portals ${lib.concatStringsSep ", " nonLoopbackPortals} are not loopback. Listen on
          127.0.0.1 only, or set services.rustiscsi.allowDemoModeOnNetwork = true if you mean it.
        '';
      }) targetList;

    warnings =
      lib.concatMap (
        t:
        lib.optional (!t.demoMode && t.acls == { }) ''
          services.rustiscsi.targets."${t.name}" has no ACLs and demoMode is off: no initiator can log in.
        ''
        ++ lib.optional (t.demoMode && cfg.allowDemoModeOnNetwork && nonLoopbackPortals != [ ]) ''
          services.rustiscsi.targets."${t.name}" is in demo mode on a network portal: any initiator that
          reaches ${lib.concatStringsSep ", " nonLoopbackPortals} can read and write its LUNs.
        ''
      ) targetList
      ++ lib.concatLists (
        lib.mapAttrsToList (
          name: b:
          lib.optional (!(lib.elem name backstoreUses)) ''
            services.rustiscsi.backstores."${name}" is not used by any target LUN.
          ''
          ++ lib.optional (lib.count (u: u == name) backstoreUses > 1) ''
            services.rustiscsi.backstores."${name}" backs several LUNs; initiators writing through
            different LUNs without a cluster file system will corrupt it.
          ''
          ++ lib.optional (b.kind == "block" && (b.size != null || b.blockSize != null)) ''
            services.rustiscsi.backstores."${name}": size and blockSize are ignored for block
            devices (the device reports its own).
          ''
        ) cfg.backstores
      )
      ++ map (p: ''
        ${p.where}: chap and mutualChap use the same passwordFile; RFC 7143 requires different
        secrets for the two directions.
      '') (lib.filter (p: p.chap != null && p.mutualChap != null && toString p.chap.passwordFile == toString p.mutualChap.passwordFile) authPlaces);

    environment.systemPackages = [ cfg.package ];

    environment.etc."rustiscsi/rustiscsi.toml".source = cfg.configFile;

    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall ports;

    users.users.rustiscsi = {
      isSystemUser = true;
      group = "rustiscsi";
      # Block devices (md, dm, sd, nvme) are root:disk 0660.
      extraGroups = [ "disk" ];
      description = "rustiscsi iSCSI target daemon";
    };
    users.groups.rustiscsi = { };

    systemd.tmpfiles.settings."10-rustiscsi" = lib.genAttrs (
      fileioDirs ++ lib.optional (!stateDirIsDefaultLocation) cfg.stateDir
    ) (_: {
      d = {
        user = "rustiscsi";
        group = "rustiscsi";
        mode = "0750";
      };
    });

    # Kept out of rustiscsi.service so that a new block LUN changes only this unit and the
    # daemon is reloaded, not restarted, by switch-to-configuration.
    systemd.targets.rustiscsi-backstores = {
      description = "Block devices served by rustiscsi";
      wants = deviceUnits;
      after = deviceUnits;
    };

    systemd.services.rustiscsi = {
      description = "rustiscsi userspace iSCSI target";
      wantedBy = [ "multi-user.target" ];
      wants = [
        "network-online.target"
        "rustiscsi-backstores.target"
      ];
      after = [
        "network-online.target"
        "rustiscsi-backstores.target"
      ];
      # Only the TOML changed: SIGHUP, sessions stay up.
      reloadTriggers = [ cfg.configFile ];

      serviceConfig = {
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = "${lib.getExe' cfg.package "rustiscsid"} --config ${configPath}";
        ExecReload = "${lib.getExe' pkgs.coreutils "kill"} -HUP $MAINPID";
        Restart = "on-failure";
        RestartSec = "2s";
        WatchdogSec = "30s";
        TimeoutStopSec = "60s";

        User = "rustiscsi";
        Group = "rustiscsi";
        LoadCredential = map (f: "${credentialId f}:${f}") secretFiles;
        StateDirectory = mkIf stateDirIsDefaultLocation (lib.removePrefix "/var/lib/" cfg.stateDir);
        StateDirectoryMode = "0750";
        RuntimeDirectory = "rustiscsi";
        RuntimeDirectoryMode = "0750";
        ReadWritePaths = fileioDirs ++ lib.optional (!stateDirIsDefaultLocation) cfg.stateDir;
        LimitNOFILE = 65536;

        # Port 3260 < 1024.
        AmbientCapabilities = [ "CAP_NET_BIND_SERVICE" ];
        CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" ];

        # Block devices must stay visible: no PrivateDevices, an allow-list instead
        # (virtblk: virtio disks; blkext: NVMe and partitions beyond the static range).
        DevicePolicy = "closed";
        DeviceAllow = [
          "block-md rw"
          "block-device-mapper rw"
          "block-sd rw"
          "block-virtblk rw"
          "block-blkext rw"
          "block-loop rw"
        ];

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
