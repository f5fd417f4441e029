# "10 gigs" is not a size the daemon parses.
# expect: services.rustiscsi.backstores.a.size' is not of type
{
  services.rustiscsi = {
    enable = true;
    backstores.a = { kind = "fileio"; path = "/srv/iscsi/a.img"; size = "10 gigs"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "a"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
  };
}
