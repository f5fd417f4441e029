#!/usr/bin/env bash
# Nothing acknowledged is lost when the daemon crashes: QEMU's iscsi:// client writes a random
# image to a fileio LUN (qemu-img ends with SYNCHRONIZE CACHE), the daemon is killed with
# SIGKILL (no drain, no shutdown path), started again on the same file, and the image reads
# back byte-identical. Run once write-through (the default) and once with write_cache = true,
# where the data is only stable because SYNCHRONIZE CACHE / FUA flush it.
#
# Usage: tests/peers/crash-durability.sh
# Last line: "N passed, M failed".
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/peers/lib.sh
. "$HERE/lib.sh"

peers_need_qemu_img
peers_init
bin=$(peers_rustiscsid_bin)
iqn=$PEERS_IQN_BASE:durable
bytes=$((32 << 20))
pass=0 fail=0

start() { # CONF LOG: starts rustiscsid, sets PID
    setsid "$bin" --config "$1" </dev/null >>"$2" 2>&1 &
    PID=$!
    peers_wait_port "$PEERS_HOST" "$port" 30 "$PID" || peers_die "rustiscsid did not start (see $2)"
}

for cache in false true; do
    name=write-cache-$cache
    dir=$PEERS_WORKDIR/$name
    mkdir -p "$dir/state"
    port=$(peers_free_port)
    cat >"$dir/rustiscsid.toml" <<TOML
[daemon]
portals = ["$PEERS_HOST:$port"]
state_dir = "$dir/state"
control_socket = "$dir/control.sock"

[backstores.disk]
kind = "fileio"
path = "$dir/disk.img"
size = "64M"
write_cache = $cache

[targets."$iqn"]
luns = [{ lun = 0, backstore = "disk" }]
demo_mode = true
TOML
    url="iscsi://$PEERS_HOST:$port/$iqn/0"
    head -c "$bytes" /dev/urandom >"$dir/src.img"
    start "$dir/rustiscsid.toml" "$dir/rustiscsid.log"
    ok=1
    timeout 120 qemu-img convert -n -f raw -O raw "$dir/src.img" "$url" >"$dir/qemu.log" 2>&1 || ok=0
    kill -KILL "$PID"
    wait "$PID" 2>/dev/null || true
    if ((ok)); then
        start "$dir/rustiscsid.toml" "$dir/rustiscsid.log"
        timeout 120 qemu-img dd -f raw -O raw bs=1M count=$((bytes >> 20)) "if=$url" "of=$dir/back.img" \
            >>"$dir/qemu.log" 2>&1 || ok=0
        kill -TERM "$PID"
        wait "$PID" 2>/dev/null || true
        ((ok)) && cmp -s "$dir/src.img" "$dir/back.img" || ok=0
    fi
    if ((ok)); then
        printf '%-26s PASS\n' "$name"
        pass=$((pass + 1))
    else
        printf '%-26s FAIL (logs in %s)\n' "$name" "$dir"
        tail -n 5 "$dir/qemu.log" "$dir/rustiscsid.log" | sed 's/^/    /'
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
((fail == 0))
