# Restated from nixpkgs nixos/modules/services/monitoring/smartd.nix (stored version
# 11dc26de): the options an appliance sets, the assertion and the unit. Two defaults depend
# on modules not stubbed here and are taken as on a headless machine without a mail
# transfer agent: notifications.mail.enable (services.mail.sendmailSetuidWrapper != null)
# and notifications.x11.enable (services.xserver.enable) are false.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  cfg = config.services.smartd;
  deviceOpts = {
    options = {
      device = mkOption {
        type = types.str;
        example = "/dev/sda";
        description = "Location of the device.";
      };
      options = mkOption {
        type = types.separatedString " ";
        default = "";
        example = "-d sat";
        description = "Options that determine how smartd monitors the device.";
      };
    };
  };
in
{
  options.services.smartd = {
    enable = lib.mkEnableOption "smartd daemon from `smartmontools` package";
    autodetect = mkOption {
      type = types.bool;
      default = true;
      description = "Monitor all devices connected at startup (DEVICESCAN).";
    };
    extraOptions = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "-A /var/log/smartd/" "--interval=3600" ];
      description = "Extra command-line options passed to smartd.";
    };
    notifications = {
      mail = {
        enable = mkOption {
          type = types.bool;
          default = false;
          description = "Send e-mail notifications.";
        };
        sender = mkOption {
          type = types.str;
          default = "root";
          description = "Sender of the notification messages.";
        };
        recipient = mkOption {
          type = types.str;
          default = "root";
          description = "Recipient of the notification messages.";
        };
        mailer = mkOption {
          type = types.path;
          default = "/run/wrappers/bin/sendmail";
          description = "Sendmail-compatible binary.";
        };
      };
      systembus-notify.enable = mkOption {
        type = types.bool;
        default = false;
        description = "Send systembus-notify notifications.";
      };
      wall.enable = mkOption {
        type = types.bool;
        default = true;
        description = "Send wall notifications to all users.";
      };
      x11.enable = mkOption {
        type = types.bool;
        default = false;
        description = "Send X11 xmessage notifications.";
      };
      test = mkOption {
        type = types.bool;
        default = false;
        description = "Send a test notification on startup.";
      };
    };
    defaults = {
      monitored = mkOption {
        type = types.separatedString " ";
        default = "-a";
        description = "Default options for devices listed in services.smartd.devices.";
      };
      autodetected = mkOption {
        type = types.separatedString " ";
        default = cfg.defaults.monitored;
        description = "Default options for autodetected devices.";
      };
    };
    devices = mkOption {
      type = types.listOf (types.submodule deviceOpts);
      default = [ ];
      description = "List of devices to monitor.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.autodetect || cfg.devices != [ ];
        message = "smartd can't run with both disabled autodetect and an empty list of devices to monitor.";
      }
    ];
    systemd.services.smartd = {
      description = "S.M.A.R.T. Daemon";
      wantedBy = [ "multi-user.target" ];
      serviceConfig.ExecStart = "${pkgs.smartmontools}/sbin/smartd ${lib.concatStringsSep " " cfg.extraOptions} --no-fork";
    };
  };
}
