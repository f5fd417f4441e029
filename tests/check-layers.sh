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
[ $bad -eq 0 ] && echo "layering: ok"
exit $bad
