# A backstore added through `settings` gets no DeviceAllow, no device wait, no ReadWritePaths.
# expect: backstores is owned by the module
{
  services.rustiscsi = {
    enable = true;
    backstores.a = { kind = "fileio"; path = "/srv/iscsi/a.img"; size = "1G"; };
    settings.backstores.raw = { kind = "block"; path = "/dev/sdz"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "a"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
  };
}
