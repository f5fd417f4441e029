#!/bin/bash
# Runs shellcheck over the runner: host scripts as bash, the guest library, /init and every
# scenario's guest part (extracted from its heredoc) as POSIX sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v shellcheck >/dev/null || { echo "shellcheck not installed (apt-get install shellcheck)" >&2; exit 2; }
shellcheck -x run.sh targets.sh lib.sh build-initramfs.sh check-scripts.sh scenarios/*.sh
shellcheck -s sh guest/guest-lib.sh guest/init
# the guest-target mode: host side, the target guest's agent and library, the initiator helpers
shellcheck -x guest-target.sh guest-target/build-overlay.sh
(cd guest-target && shellcheck -x -s sh agent.sh target-lib.sh initiator-lib.sh)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in scenarios/*.sh; do
    n=$(basename "$f" .sh)
    { echo '# shellcheck shell=sh disable=SC2154,SC2016  # env + guest-lib define the rest; ev takes code'
      echo ". ./guest-lib.sh"
      echo ". ./initiator-lib.sh"
      sed -n "/<<'GUEST'/,/^GUEST/p" "$f" | sed '1d;$d'; } > "$tmp/$n.sh"
    cp guest/guest-lib.sh "$tmp/guest-lib.sh"
    cp guest-target/initiator-lib.sh "$tmp/initiator-lib.sh"
    (cd "$tmp" && shellcheck -x -s sh "$n.sh") || { echo "in the guest part of $f" >&2; exit 1; }
done
echo "shellcheck: clean"
