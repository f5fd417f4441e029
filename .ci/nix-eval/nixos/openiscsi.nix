# Restated from nixpkgs nixos/modules/services/networking/iscsi/initiator.nix (the
# RFC 166-formatted version without lib.mdDoc, as stored for 25.x/26.x): options and what
# the module sets.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.services.openiscsi;
in
{
  options.services.openiscsi = {
    enable = lib.mkEnableOption "the openiscsi iscsi daemon";
    enableAutoLoginOut = lib.mkEnableOption ''
      automatic login and logout of all automatic targets.
      You probably do not want this
    '';
    discoverPortal = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Portal to discover targets on";
    };
    name = mkOption {
      type = types.str;
      example = "iqn.2020-08.org.linux-iscsi.initiatorhost:example";
      description = "Name of this iscsi initiator";
    };
    package = lib.mkPackageOption pkgs "openiscsi" { };
    extraConfig = mkOption {
      type = types.str;
      default = "";
      description = "Lines to append to default iscsid.conf";
    };
    extraConfigFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Append an additional file's contents to /etc/iscsid.conf (a non-store path).";
    };
  };

  config = lib.mkIf cfg.enable {
    environment.etc."iscsi/iscsid.conf.fragment".source = pkgs.runCommand "iscsid.conf" { } ''
      cat "${cfg.package}/etc/iscsi/iscsid.conf" > $out
      cat << 'EOF' >> $out
      ${cfg.extraConfig}
      ${lib.optionalString cfg.enableAutoLoginOut "node.startup = automatic"}
      EOF
    '';
    environment.etc."iscsi/initiatorname.iscsi".text = "InitiatorName=${cfg.name}";
    systemd.packages = [ cfg.package ];
    systemd.services.iscsid.wantedBy = [ "multi-user.target" ];
    systemd.sockets.iscsid.wantedBy = [ "sockets.target" ];
    systemd.services.iscsi = lib.mkIf cfg.enableAutoLoginOut { wantedBy = [ "remote-fs.target" ]; };
    environment.systemPackages = [ cfg.package ];
    boot.kernelModules = [ "iscsi_tcp" ];
  };
}
