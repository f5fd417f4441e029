# An IPv6 portal must be bracketed.
# expect: services.rustiscsi.portals."[definition 1-entry 1]"' is not of type
{
  services.rustiscsi = {
    enable = true;
    portals = [ "::3260" ];
    backstores.a = { kind = "fileio"; path = "/srv/iscsi/a.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "a"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
  };
}
