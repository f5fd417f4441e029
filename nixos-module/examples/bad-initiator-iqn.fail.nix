# The ACL is keyed by a host name, not an initiator IQN.
# expect: not a valid initiator name
{
  services.rustiscsi = {
    enable = true;
    backstores.disk0 = { kind = "fileio"; path = "/srv/iscsi/disk0.img"; size = "1G"; };
    targets."iqn.2026-11.org.example.nas:t" = {
      luns = [ { backstore = "disk0"; } ];
      acls."client1.example.org" = { };
    };
  };
}
