# Demo mode on loopback: a 1 GiB ramdisk any local initiator may use, e.g. for
# `iscsi-inq iscsi://127.0.0.1/iqn.2026-11.org.example.demo:ram/0`. Also shows the
# typed session limits and the freeform `settings` for a key no typed option sets.
{
  services.rustiscsi = {
    enable = true;
    portals = [ "127.0.0.1:3260" ];
    stateDir = "/srv/rustiscsi-state";
    metricsListen = "127.0.0.1:9755";
    backstores.ram = {
      kind = "ramdisk";
      size = "1G";
      blockSize = 4096;
    };
    targets."iqn.2026-11.org.example.demo:ram" = {
      luns = [ { backstore = "ram"; } ];
      demoMode = true;
    };
    iscsi = {
      headerDigest = [ "CRC32C" ];
      dataDigest = [ "CRC32C" ];
    };
    limits = {
      loginTimeoutSecs = 5;
      maxConnections = 16;
    };
    settings.iscsi.queue_depth = 32;
  };
}
