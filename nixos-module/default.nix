# NixOS module for rustiscsi, the userspace iSCSI target: `services.rustiscsi`.
#
# The typed options (./options.nix) render /etc/rustiscsi/rustiscsi.toml (the daemon's config
# model, src/config/mod.rs, rustiscsi.toml(5); TOML keys are snake_case). `settings` adds keys
# that have no typed option; it may not touch what the unit is derived from (./checks.nix).
# The file is checked at build time with `rustiscsid --check`.
#
# Secrets (`passwordFile`) are never read at evaluation time and never copied to the store: each
# file is handed to the unit with systemd `LoadCredential` and the TOML names its copy under
# /run/credentials/rustiscsi.service/.
#
# Reload, not restart: a configuration change that only alters the TOML reloads the daemon
# (SIGHUP, sessions of unaffected LUNs stay up). Changes to the unit itself restart it
# (./service.nix): a new package, a new or changed `passwordFile` (credentials are copied at
# start), a new fileio backstore (ReadWritePaths), a new driver in `deviceModules`, a new
# log level. Block devices are waited for through the separate `rustiscsi-backstores.target`,
# so adding a block LUN whose driver is already loaded does not change rustiscsi.service.
{
  imports = [
    ./options.nix
    ./checks.nix
    ./service.nix
  ];
}
