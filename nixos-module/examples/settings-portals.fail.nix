# `settings` must not move the portals: the firewall, the demo-mode check and IPAddressAllow
# are computed from services.rustiscsi.portals.
# expect: settings sets daemon.portals, but daemon.portals is owned by the module
{
  services.rustiscsi = {
    enable = true;
    openFirewall = true;
    portals = [ "127.0.0.1:3260" ];
    settings.daemon.portals = [ "0.0.0.0:3261" ];
    backstores.a = { kind = "fileio"; path = "/srv/iscsi/a.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "a"; } ];
      acls."iqn.2005-03.org.open-iscsi:c" = { };
    };
  };
}
