# LUN 0 twice: explicit `lun = 0` and the first entry's position.
# expect: LUN number(s) 0 used more than once
{
  services.rustiscsi = {
    enable = true;
    backstores.a = { kind = "fileio"; path = "/srv/iscsi/a.img"; size = "1G"; };
    backstores.b = { kind = "fileio"; path = "/srv/iscsi/b.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "a"; } { lun = 0; backstore = "b"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
  };
}
