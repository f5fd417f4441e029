# The same key set twice: by a typed option and by `settings`.
# expect: services.rustiscsi.iscsi.queueDepth both set iscsi.queue_depth
{
  services.rustiscsi = {
    enable = true;
    iscsi.queueDepth = 64;
    settings.iscsi.queue_depth = 32;
    backstores.a = { kind = "fileio"; path = "/srv/iscsi/a.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "a"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
  };
}
