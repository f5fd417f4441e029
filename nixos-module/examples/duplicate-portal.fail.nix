# The same portal twice.
# expect: portals lists 0.0.0.0:3260 more than once
{
  services.rustiscsi = {
    enable = true;
    portals = [ "0.0.0.0:3260" "0.0.0.0:3260" ];
    backstores.a = { kind = "fileio"; path = "/srv/iscsi/a.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "a"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
  };
}
