#!/bin/bash
# Runs shellcheck over the runner: host scripts as bash, the guest library, /init and every
# scenario's guest part (extracted from its heredoc) as POSIX sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v shellcheck >/dev/null || { echo "shellcheck not installed (apt-get install shellcheck)" >&2; exit 2; }
shellcheck -x run.sh targets.sh lib.sh build-initramfs.sh check-scripts.sh scenarios/*.sh
shellcheck -s sh guest/guest-lib.sh guest/init
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in scenarios/*.sh; do
    n=$(basename "$f" .sh)
    { echo '# shellcheck shell=sh disable=SC2154,SC2016  # env + guest-lib define the rest; ev takes code'
      echo ". ./guest-lib.sh"
      sed -n "/<<'GUEST'/,/^GUEST/p" "$f" | sed '1d;$d'; } > "$tmp/$n.sh"
    cp guest/guest-lib.sh "$tmp/guest-lib.sh"
    (cd "$tmp" && shellcheck -x -s sh "$n.sh") || { echo "in the guest part of $f" >&2; exit 1; }
done
echo "shellcheck: clean"
