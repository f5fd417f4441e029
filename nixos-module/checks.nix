# Assertions and warnings of services.rustiscsi (see ./default.nix).
{
  config,
  lib,
  utils,
  ...
}:
let
  cfg = config.services.rustiscsi;
  mod = import ./lib.nix { inherit lib utils cfg; };
in
{
  config = lib.mkIf cfg.enable {
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
          assertion = mod.duplicates cfg.portals == [ ];
          message = "services.rustiscsi.portals lists ${lib.concatStringsSep ", " (mod.duplicates cfg.portals)} more than once.";
        }
        {
          assertion =
            cfg.iscsi.firstBurstLength == null
            || cfg.iscsi.maxBurstLength == null
            || cfg.iscsi.firstBurstLength <= cfg.iscsi.maxBurstLength;
          message = "services.rustiscsi.iscsi.firstBurstLength must not exceed iscsi.maxBurstLength (RFC 7143 §13.14).";
        }
      ]
      ++ map (x: {
        assertion = false;
        message = ''
          services.rustiscsi.settings sets ${lib.concatMapStringsSep ", " mod.showKey x.keys}, but
          ${mod.showKey x.m.path} is owned by the module (${x.m.why})${
            lib.optionalString (x.m.option != null) "; set services.rustiscsi.${x.m.option} instead"
          }.
        '';
      }) mod.settingsOnManaged
      ++ map (x: {
        assertion = false;
        message = ''
          services.rustiscsi.settings (${lib.concatMapStringsSep ", " mod.showKey x.keys}) and
          services.rustiscsi.${x.t.option} both set ${mod.showKey x.t.path}; keep the typed option.
        '';
      }) mod.settingsOnTyped
      ++ lib.mapAttrsToList (name: b: {
        assertion = b.kind != "ramdisk" || b.cache == null;
        message = ''services.rustiscsi.backstores."${name}": `cache` does not apply to a ramdisk.'';
      }) cfg.backstores
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
        assertion = mod.isIscsiName t.name;
        message = ''
          services.rustiscsi.targets."${t.name}": not a valid iSCSI name. Use
          iqn.YYYY-MM.reversed.domain[:suffix] (lower case), eui.<16 hex> or naa.<16|32 hex>.
        '';
      }) mod.targetList
      ++ map (a: {
        assertion = mod.isIscsiName a.name;
        message = ''
          services.rustiscsi.targets."${a.target}".acls."${a.name}": not a valid initiator name.
          Use iqn.YYYY-MM.reversed.domain[:suffix] (lower case), eui.<16 hex> or naa.<16|32 hex>.
        '';
      }) mod.aclList
      ++ lib.concatMap (
        t:
        map (l: {
          assertion = cfg.backstores ? ${l.backstore};
          message = ''
            services.rustiscsi.targets."${t.name}".luns: backstore "${l.backstore}" is not defined in
            services.rustiscsi.backstores (defined: ${lib.concatStringsSep ", " (lib.attrNames cfg.backstores)}).
          '';
        }) t.luns
      ) mod.targetList
      ++ map (t: {
        assertion = mod.duplicates (mod.lunNumbers t) == [ ];
        message = ''services.rustiscsi.targets."${t.name}".luns: LUN number(s) ${
          lib.concatMapStringsSep ", " toString (mod.duplicates (mod.lunNumbers t))
        } used more than once (a LUN without `lun` takes its position in the list).'';
      }) mod.targetList
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
            assertion = lib.elem tl (mod.lunNumbers t);
            message = ''
              services.rustiscsi.targets."${a.target}".acls."${a.name}".mappedLuns: LUN ${toString m.lun}
              maps target LUN ${toString tl}, which the target does not have (it has: ${
                lib.concatMapStringsSep ", " toString (mod.lunNumbers t)
              }).
            '';
          }
        ) a.mappedLuns
      ) mod.aclList
      ++ map (a: {
        assertion = mod.duplicates (map (m: m.lun) a.mappedLuns) == [ ];
        message = ''services.rustiscsi.targets."${a.target}".acls."${a.name}".mappedLuns: a LUN number is mapped twice.'';
      }) mod.aclList
      ++ map (p: {
        assertion = p.mutualChap == null || p.chap != null;
        message = "${p.where}: mutualChap needs chap (the initiator must authenticate before the target does).";
      }) mod.authPlaces
      ++ map (t: {
        assertion = !t.demoMode || cfg.allowDemoModeOnNetwork || mod.nonLoopbackPortals == [ ];
        message = ''
          services.rustiscsi.targets."${t.name}".demoMode lets any initiator read and write its LUNs,
          and the portals ${lib.concatStringsSep ", " mod.nonLoopbackPortals} are not loopback. Listen on
          127.0.0.1 only, or set services.rustiscsi.allowDemoModeOnNetwork = true if you mean it.
        '';
      }) mod.targetList;

    warnings =
      lib.concatMap (
        t:
        lib.optional (!t.demoMode && t.acls == { }) ''
          services.rustiscsi.targets."${t.name}" has no ACLs and demoMode is off: no initiator can log in.
        ''
        ++ lib.optional (t.demoMode && cfg.allowDemoModeOnNetwork && mod.nonLoopbackPortals != [ ]) ''
          services.rustiscsi.targets."${t.name}" is in demo mode on a network portal: any initiator that
          reaches ${lib.concatStringsSep ", " mod.nonLoopbackPortals} can read and write its LUNs.
        ''
      ) mod.targetList
      ++ lib.concatLists (
        lib.mapAttrsToList (
          name: b:
          lib.optional (!(lib.elem name mod.backstoreUses)) ''
            services.rustiscsi.backstores."${name}" is not used by any target LUN.
          ''
          ++ lib.optional (lib.count (u: u == name) mod.backstoreUses > 1) ''
            services.rustiscsi.backstores."${name}" backs several LUNs; initiators writing through
            different LUNs without a cluster file system will corrupt it.
          ''
          ++ lib.optional (b.kind == "block" && (b.size != null || b.blockSize != null)) ''
            services.rustiscsi.backstores."${name}": size and blockSize are ignored for block
            devices (the device reports its own).
          ''
        ) cfg.backstores
      )
      ++ lib.optional (cfg.firewallInterfaces != [ ] && !cfg.openFirewall) ''
        services.rustiscsi.firewallInterfaces is set but openFirewall is off: no port is opened.
      ''
      ++ lib.optional (mod.allowedAddresses != null && cfg.metricsListen != null && !(mod.isLoopbackPortal cfg.metricsListen) && cfg.extraAllowedAddresses == [ ]) ''
        services.rustiscsi: every target restricts its networks, so the unit only talks to those
        (IPAddressAllow=); the metrics endpoint ${cfg.metricsListen} is reachable from them only.
        Add the scraper to services.rustiscsi.extraAllowedAddresses.
      ''
      ++ map (p: ''
        ${p.where}: chap and mutualChap use the same passwordFile; RFC 7143 requires different
        secrets for the two directions.
      '') (lib.filter (p: p.chap != null && p.mutualChap != null && toString p.chap.passwordFile == toString p.mutualChap.passwordFile) mod.authPlaces);

  };
}
