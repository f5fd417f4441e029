# The smallest useful target: one sparse file LUN for one initiator, no CHAP,
# reachable from the LAN (port 3260 opened in the firewall).
{
  services.rustiscsi = {
    enable = true;
    openFirewall = true;
    backstores.disk0 = {
      kind = "fileio";
      path = "/srv/iscsi/disk0.img";
      size = "20G";
    };
    targets."iqn.2026-11.org.example.nas:disk0" = {
      luns = [ { backstore = "disk0"; } ];
      acls."iqn.2005-03.org.open-iscsi:workstation" = { };
    };
  };
}
