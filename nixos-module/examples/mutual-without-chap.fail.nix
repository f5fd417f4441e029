# Mutual CHAP without one-way CHAP.
# expect: mutualChap needs chap
{
  services.rustiscsi = {
    enable = true;
    backstores.disk0 = { kind = "fileio"; path = "/srv/iscsi/disk0.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "disk0"; } ];
      acls."iqn.2005-03.org.open-iscsi:c".mutualChap = {
        user = "nas";
        passwordFile = "/run/secrets/iscsi/nas";
      };
    };
  };
}
