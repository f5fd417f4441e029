#!/usr/bin/env bash
# The layer rule of src/lib.rs: the protocol, SCSI and storage layers never reach up into
# the daemon's modules, and the iSCSI layer has no tokio (it is sans-IO).
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
if grep -rnE 'crate::(server|registry|config|control|cli)\b' src/iscsi src/scsi src/backstore; then
  echo "layering: src/iscsi, src/scsi and src/backstore must not import server/registry/config/control/cli" >&2
  bad=1
fi
if grep -rnE '(use tokio|tokio::)' src/iscsi; then
  echo "layering: src/iscsi must not use tokio" >&2
  bad=1
fi
# The session state machine is sans-IO: no sockets, no threads, no clock reads (time is
# an argument of every call). Its tests may read the clock once to start simulated time.
# (Test code, after a file's `#[cfg(test)]` or under tests/, is not checked.)
sans_io_code() {
  find src/iscsi/session src/iscsi/wire -name '*.rs' ! -path '*/tests/*' ! -name tests.rs -print0 |
    xargs -0 awk '/^#\[cfg\(test\)\]/ { nextfile } { print FILENAME ":" FNR ": " $0 }'
}
if sans_io_code | grep -E '(std::net::Tcp|std::thread|Instant::now|SystemTime::now)'; then
  echo "layering: src/iscsi/session and src/iscsi/wire must not read the clock or open sockets" >&2
  bad=1
fi
[ $bad -eq 0 ] && echo "layering: ok"
exit $bad
