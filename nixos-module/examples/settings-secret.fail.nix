# A CHAP secret named through `settings` is not handed to the unit with LoadCredential (and
# the state dir moved under the daemon's feet).
# expect: targets is owned by the module
{
  services.rustiscsi = {
    enable = true;
    backstores.a = { kind = "fileio"; path = "/srv/iscsi/a.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "a"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
    settings.daemon.state_dir = "/srv/state";
    settings.targets."iqn.2026-11.org.example.nas:t".acls."iqn.2005-03.org.open-iscsi:c".chap = {
      user = "c";
      password_file = "/root/secret";
    };
  };
}
