# A target reachable only from the storage network: the portal port is opened on the storage
# interface only, and because every target restricts its initiators' networks the unit may
# only talk to those networks (IPAddressAllow=, IPAddressDeny=any) - plus the Prometheus
# server. Pinned LUN identity (serial, NAA, INQUIRY strings), direct I/O, tuned limits, debug
# logs for the server module.
{
  services.rustiscsi = {
    enable = true;
    openFirewall = true;
    firewallInterfaces = [ "enp3s0" ];
    portals = [ "10.20.0.5:3260" ];
    metricsListen = "10.20.0.5:9755";
    extraAllowedAddresses = [ "10.30.0.7/32" ];
    logLevel = "info,rustiscsi::server=debug";

    backstores.vm1 = {
      kind = "fileio";
      path = "/srv/iscsi/vm1.img";
      size = "200G";
      cache = "direct";
      serial = "NAS-VM1-0001";
      wwn = "naa.6001405c0ffee0000000000000000001";
      vendor = "EXAMPLE";
      product = "vm1 disk";
    };

    targets."iqn.2026-11.org.example.nas:vm" = {
      luns = [ { backstore = "vm1"; } ];
      allowedNetworks = [ "10.20.0.0/24" ];
      acls."iqn.2026-11.org.example:hypervisor1" = {
        chap = {
          user = "hypervisor1";
          passwordFile = "/run/secrets/iscsi/hypervisor1";
        };
      };
    };

    limits = {
      maxConnections = 64;
      maxLoginConnections = 16;
      maxDiscoverySessions = 8;
      pduTimeoutSecs = 10;
      sendTimeoutSecs = 20;
      tcpKeepaliveSecs = 15;
      bufferMemory = "512M";
      sessionBufferMemory = "64M";
    };
  };
}
