# Helpers of the rustiscsi NixOS module: option types for names and sizes, the rendering of
# the typed options into the daemon's TOML (src/config/mod.rs; keys are snake_case), and the
# facts the unit is derived from. `cfg` is config.services.rustiscsi (lazily: the types below
# do not read it).
{
  lib,
  utils,
  cfg,
}:
let
  inherit (lib) types;
in
rec {
  unitName = "rustiscsi";
  credentialsDir = "/run/credentials/${unitName}.service";
  configPath = "/etc/rustiscsi/rustiscsi.toml";
  controlSocket = "/run/rustiscsi/control.sock";

  # ---------------------------------------------------------------- names and formats

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

  # Printable ASCII without leading or trailing space, 1..max characters (INQUIRY / VPD
  # fields; the daemon's config::validate applies the same rule).
  asciiField =
    max:
    types.strMatching "[!-~]([ -~]{0,${toString (max - 2)}}[!-~])?"
    // {
      description = "printable ASCII, 1 to ${toString max} characters, no leading or trailing space";
    };

  # config::check_naa: naa. + 16 hex digits of NAA type 2, 3 or 5, or 32 of type 6.
  wwnType = types.strMatching "naa[.]([235][0-9a-fA-F]{15}|6[0-9a-fA-F]{31})" // {
    description = "NAA designator: naa. + 16 hex digits (NAA type 2, 3 or 5) or 32 (type 6)";
  };

  # A DeviceAllow= entry: a /dev path or a block-/char- device group, then r, w and/or m.
  deviceAllowType = types.strMatching "(/dev/[^ ]+|(block|char)-[^ ]+) [rwm]+" // {
    description = ''systemd DeviceAllow= entry ("/dev/sg3 rw", "block-sr r")'';
  };

  # ---------------------------------------------------------------- block device groups

  # The block device groups (/proc/devices) the unit may open, and the kernel module that
  # registers each. systemd resolves `block-<group>` when the unit starts: a group whose
  # driver is loaded later is not in the unit's device filter (EPERM) until a restart.
  deviceGroups = {
    md = "md_mod";
    device-mapper = "dm_mod";
    sd = "sd_mod";
    virtblk = "virtio_blk";
    blkext = null; # NVMe namespaces and extended partitions: built in
    loop = "loop";
    nbd = "nbd";
    rbd = "rbd";
    drbd = "drbd";
    bcache = "bcache";
    zvol = null; # ZFS: loaded by the ZFS units, not here
    mmc = "mmc_block";
  };
  # Drivers a block path names by itself (the others cannot be told from a path).
  driverOfPath =
    p:
    let
      rules = [
        [ "/dev/md" "md_mod" ]
        [ "/dev/mapper/" "dm_mod" ]
        [ "/dev/dm-" "dm_mod" ]
        [ "/dev/loop" "loop" ]
        [ "/dev/sd" "sd_mod" ]
        [ "/dev/vd" "virtio_blk" ]
        [ "/dev/nbd" "nbd" ]
        [ "/dev/rbd" "rbd" ]
        [ "/dev/drbd" "drbd" ]
        [ "/dev/bcache" "bcache" ]
        [ "/dev/mmcblk" "mmc_block" ]
      ];
      hit = lib.findFirst (r: lib.hasPrefix (lib.head r) p) null rules;
    in
    if hit == null then null else lib.last hit;
  # Always loaded: the NAS staples, so that an md array or LVM volume created after boot can
  # become a LUN by reload.
  baseDeviceModules = [
    "md_mod"
    "dm_mod"
    "loop"
    "sd_mod"
  ];

  # ---------------------------------------------------------------- rendering

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
      inherit (b)
        kind
        path
        size
        cache
        serial
        wwn
        vendor
        product
        ;
      block_size = b.blockSize;
      write_cache = b.writeCache;
    };

  # Typed scalar options rendered only when set: option name -> TOML key, per section.
  iscsiKeys = {
    maxRecvDataSegmentLength = "max_recv_data_segment_length";
    maxBurstLength = "max_burst_length";
    firstBurstLength = "first_burst_length";
    maxOutstandingR2T = "max_outstanding_r2t";
    immediateData = "immediate_data";
    initialR2T = "initial_r2t";
    queueDepth = "queue_depth";
    headerDigest = "header_digest";
    dataDigest = "data_digest";
  };
  limitKeys = {
    maxConnections = "max_connections";
    maxLoginConnections = "max_login_connections";
    maxDiscoverySessions = "max_discovery_sessions";
    loginTimeoutSecs = "login_timeout_secs";
    pduTimeoutSecs = "pdu_timeout_secs";
    sendTimeoutSecs = "send_timeout_secs";
    tcpKeepaliveSecs = "tcp_keepalive_secs";
    nopIntervalSecs = "nop_interval_secs";
    nopTimeoutSecs = "nop_timeout_secs";
    authFailuresPerMinute = "auth_failures_per_minute";
    bufferMemory = "buffer_memory";
    sessionBufferMemory = "session_buffer_memory";
  };
  renderKeys = keys: values: compact (lib.mapAttrs' (o: k: lib.nameValuePair k values.${o}) keys);

  # What the module owns in the TOML, and why: the unit, the firewall and the checks are
  # computed from these typed options, so `settings` must not change them.
  managedKeys = [
    {
      path = [ "daemon" "portals" ];
      option = "portals";
      why = "the firewall, IPAddressAllow and the demo-mode check are computed from it";
    }
    {
      path = [ "daemon" "state_dir" ];
      option = "stateDir";
      why = "StateDirectory / ReadWritePaths are computed from it";
    }
    {
      path = [ "daemon" "control_socket" ];
      option = null;
      why = "the socket lives in RuntimeDirectory /run/rustiscsi";
    }
    {
      path = [ "daemon" "managed_by" ];
      option = null;
      why = "it tells `rustiscsi saveconfig` that NixOS owns the file";
    }
    {
      path = [ "daemon" "allow_demo_mode_on_network" ];
      option = "allowDemoModeOnNetwork";
      why = "the demo-mode assertion is computed from it";
    }
    {
      path = [ "daemon" "metrics_listen" ];
      option = "metricsListen";
      why = "IPAddressAllow is computed with it";
    }
    {
      path = [ "discovery" ];
      option = "discovery";
      why = "its secrets must be passed with LoadCredential";
    }
    {
      path = [ "backstores" ];
      option = "backstores";
      why = "DeviceAllow, device waits, ReadWritePaths and tmpfiles are computed from them";
    }
    {
      path = [ "targets" ];
      option = "targets";
      why = "secrets (LoadCredential), IPAddressAllow and the checks are computed from them";
    }
  ];

  generatedSettings = nonEmpty {
    daemon =
      compact {
        inherit (cfg) portals;
        state_dir = cfg.stateDir;
        control_socket = controlSocket;
        allow_demo_mode_on_network = cfg.allowDemoModeOnNetwork;
        metrics_listen = cfg.metricsListen;
        managed_by = "NixOS option services.rustiscsi";
      }
      // renderKeys limitKeys cfg.limits;
    iscsi = renderKeys iscsiKeys cfg.iscsi;
    discovery = renderAuth cfg.discovery;
    backstores = lib.mapAttrs renderBackstore cfg.backstores;
    targets = lib.mapAttrs renderTarget cfg.targets;
  };

  # Leaf paths of a nested attribute set (empty sets have none).
  leafPaths =
    prefix: v:
    if lib.isAttrs v then
      lib.concatLists (lib.mapAttrsToList (k: x: leafPaths (prefix ++ [ k ]) x) v)
    else
      [ prefix ];
  # One path is a prefix of the other: setting one replaces or extends the other.
  overlaps =
    a: b:
    let
      n = lib.min (lib.length a) (lib.length b);
    in
    lib.take n a == lib.take n b;
  showKey = lib.concatMapStringsSep "." (k: if builtins.match "[A-Za-z0-9_-]+" k != null then k else ''"${k}"'');

  settingsLeaves = leafPaths [ ] cfg.settings;
  # `settings` keys the module owns.
  settingsOnManaged = lib.filter (x: x.keys != [ ]) (
    map (m: {
      inherit m;
      keys = lib.filter (p: overlaps p m.path) settingsLeaves;
    }) managedKeys
  );
  # `settings` keys a typed option sets too (typed options are rendered only when set).
  typedSet =
    (map (o: {
      path = [ "daemon" limitKeys.${o} ];
      option = "limits.${o}";
    }) (lib.filter (o: cfg.limits.${o} != null) (lib.attrNames limitKeys)))
    ++ map (o: {
      path = [ "iscsi" iscsiKeys.${o} ];
      option = "iscsi.${o}";
    }) (lib.filter (o: cfg.iscsi.${o} != null) (lib.attrNames iscsiKeys));
  settingsOnTyped = lib.filter (x: x.keys != [ ]) (
    map (t: {
      inherit t;
      keys = lib.filter (p: overlaps p t.path) settingsLeaves;
    }) typedSet
  );

  # With the assertions above holding, this only adds keys no typed option sets.
  finalSettings = lib.recursiveUpdate generatedSettings cfg.settings;

  # ---------------------------------------------------------------- derived facts

  allChaps = [
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
  fileioFiles = lib.unique (lib.mapAttrsToList (_: b: toString b.path) (backstoresOf "fileio"));
  deviceUnits = map (p: "${utils.escapeSystemdPath p}.device") blockPaths;
  defaultDeviceModules = lib.unique (
    baseDeviceModules ++ lib.filter (m: m != null) (map driverOfPath blockPaths)
  );

  stateDirIsDefaultLocation = lib.hasPrefix "/var/lib/" cfg.stateDir;

  ports = lib.unique (map portalPort cfg.portals);

  targetList = lib.mapAttrsToList (name: t: t // { inherit name; }) cfg.targets;
  aclList = lib.concatMap (
    t:
    lib.mapAttrsToList (
      name: a:
      a
      // {
        inherit name;
        target = t.name;
      }
    ) t.acls
  ) targetList;

  # Source networks a target admits: its own allowedNetworks; else, when every ACL restricts
  # (and no demo mode opens it to anyone), the union of the ACLs'; null = anyone.
  targetNetworks =
    t:
    if t.allowedNetworks != [ ] then
      t.allowedNetworks
    else if
      !t.demoMode && t.acls != { } && lib.all (a: a.allowedNetworks != [ ]) (lib.attrValues t.acls)
    then
      lib.concatMap (a: a.allowedNetworks) (lib.attrValues t.acls)
    else
      null;
  # IPAddressAllow= for the unit, or null when some target admits anyone.
  allowedAddresses =
    if cfg.targets != { } && lib.all (t: targetNetworks t != null) targetList then
      lib.unique ([ "localhost" ] ++ lib.concatMap targetNetworks targetList ++ cfg.extraAllowedAddresses)
    else
      null;

  # Every place a (chap, mutualChap) pair can be set, for the "mutual needs one-way" rule.
  authPlaces = [
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
}
