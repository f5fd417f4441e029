# A block backstore needs a path.
# expect: kind "block" needs `path`
{
  services.rustiscsi = {
    enable = true;
    backstores.nas0.kind = "block";
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "nas0"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
  };
}
