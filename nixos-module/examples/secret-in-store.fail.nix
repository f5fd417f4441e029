# A secret in the Nix store (world-readable) is refused by the passwordFile type.
# expect: is not of type `absolute path not in the Nix store'
{
  services.rustiscsi = {
    enable = true;
    backstores.disk0 = { kind = "fileio"; path = "/srv/iscsi/disk0.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "disk0"; } ];
      acls."iqn.2005-03.org.open-iscsi:c".chap = {
        user = "c";
        passwordFile = "/nix/store/00000000000000000000000000000000-chap-secret";
      };
    };
  };
}
