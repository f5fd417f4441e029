#!/usr/bin/env bash
# Nothing acknowledged is lost when the daemon crashes: QEMU's iscsi:// client writes a random
# image to a fileio LUN (qemu-img ends with SYNCHRONIZE CACHE), the daemon is killed with
# SIGKILL (no drain, no shutdown path), started again on the same file, and the image reads
# back byte-identical. Run once write-through (the default) and once with write_cache = true,
# where the data is only stable because SYNCHRONIZE CACHE / FUA flush it.
#
# A daemon crash loses nothing the kernel already holds: a write or a punched hole that sits
# in the page cache survives kill -9. So the second half cuts the power: the fileio file lives
# on powercut-fs (tests/peers/powercut-fs, a FUSE file system that keeps every change in
# memory until fsync/fdatasync and loses it when killed). qemu-io (-t writeback, so it adds
# no FUA or flush of its own) sends one command, and as
# soon as it reports GOOD, the daemon and the file system are killed together; what the
# backing file holds then is what was durable when GOOD was sent:
#   - UNMAP, and WRITE SAME with UNMAP (qemu-io write -z -u), in write-through mode: the range
#     reads as zeros after the cut (hole punching is not covered by O_DSYNC);
#   - a FUA write in write-back mode (qemu-io write -f): the data is there after the cut;
#   - a check of the harness itself: a plain write-back write without FUA is lost.
#
# Usage: tests/peers/crash-durability.sh
# Last line: "N passed, M failed".
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/peers/lib.sh
. "$HERE/lib.sh"

peers_need_qemu_img
peers_need_pkgs fuse3
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
# --- power cut -------------------------------------------------------------------------
powercut=$PEERS_REPO/target/powercut-fs/release/powercut-fs
cargo build --release --quiet --manifest-path "$HERE/powercut-fs/Cargo.toml" \
    --target-dir "$PEERS_REPO/target/powercut-fs" || peers_die "cannot build powercut-fs"
mib=$((1 << 20))

# cut NAME WRITE_CACHE QEMU_IO_COMMAND CHECK: runs one command against a LUN on powercut-fs,
# cuts the power once qemu-io reports it done, then runs CHECK (a function of $dir).
cut() {
    local name=$1 cache=$2 cmd=$3 check=$4
    dir=$PEERS_WORKDIR/powercut-$name
    mkdir -p "$dir/state" "$dir/mnt"
    head -c $((32 * mib)) /dev/urandom >"$dir/before.img"
    cp "$dir/before.img" "$dir/durable.img"
    "$powercut" "$dir/durable.img" "$dir/mnt" 2>"$dir/powercut.log" &
    local fs=$!
    local t=0
    until [[ -f $dir/mnt/disk.img ]]; do
        ((t++ < 100)) || peers_die "powercut-fs did not mount (see $dir/powercut.log)"
        sleep 0.1
    done
    port=$(peers_free_port)
    cat >"$dir/rustiscsid.toml" <<TOML
[daemon]
portals = ["$PEERS_HOST:$port"]
state_dir = "$dir/state"
control_socket = "$dir/control.sock"

[backstores.disk]
kind = "fileio"
path = "$dir/mnt/disk.img"
write_cache = $cache

[targets."$iqn"]
luns = [{ lun = 0, backstore = "disk" }]
demo_mode = true
TOML
    start "$dir/rustiscsid.toml" "$dir/rustiscsid.log"
    local ok=1 line done=0
    coproc QIO { exec qemu-io -t writeback -d unmap -f raw "iscsi://$PEERS_HOST:$port/$iqn/0" 2>&1; }
    printf '%s\n' "$cmd" >&"${QIO[1]}"
    # qemu-io prints "<op> N/N bytes at offset O" when the command completed with GOOD.
    while IFS= read -r -t 120 line <&"${QIO[0]}"; do
        printf '%s\n' "$line" >>"$dir/qemu-io.log"
        if [[ $line =~ bytes\ at\ offset ]]; then done=1; break; fi
        if [[ $line =~ [Ee]rror|failed ]]; then break; fi
    done
    # The power cut: the daemon and the file system die at once; qemu-io after them.
    kill -KILL "$PID" "$fs" 2>/dev/null || true
    wait "$PID" "$fs" 2>/dev/null || true
    kill -KILL "$QIO_PID" 2>/dev/null || true
    wait "$QIO_PID" 2>/dev/null || true
    fusermount3 -u -z "$dir/mnt" 2>/dev/null || umount -l "$dir/mnt" 2>/dev/null || true
    ((done)) || ok=0
    ((ok)) && { "$check" || ok=0; }
    if ((ok)); then
        printf '%-26s PASS\n' "$name"
        pass=$((pass + 1))
    else
        printf '%-26s FAIL (logs in %s)\n' "$name" "$dir"
        tail -n 5 "$dir/qemu-io.log" "$dir/rustiscsid.log" 2>/dev/null | sed 's/^/    /'
        fail=$((fail + 1))
    fi
}

# Bytes [OFF, OFF+LEN) of durable.img are zeros / all BYTE / as before.
zeros_at() { cmp -s <(head -c "$2" /dev/zero) <(tail -c +$(($1 + 1)) "$dir/durable.img" | head -c "$2"); }
byte_at() { cmp -s <(head -c "$2" /dev/zero | tr '\0' "\\$3") <(tail -c +$(($1 + 1)) "$dir/durable.img" | head -c "$2"); }
unchanged_at() { cmp -s <(tail -c +$(($1 + 1)) "$dir/before.img" | head -c "$2") <(tail -c +$(($1 + 1)) "$dir/durable.img" | head -c "$2"); }

check_unmapped() { zeros_at 0 $((16 * mib)) && unchanged_at $((16 * mib)) $((16 * mib)); }
check_fua() { byte_at 0 $((8 * mib)) 375 && unchanged_at $((8 * mib)) $((24 * mib)); }
check_lost() { unchanged_at 0 $((32 * mib)); }

cut unmap-powercut false "discard 0 16M" check_unmapped
cut write-same-unmap-powercut false "write -z -u 0 16M" check_unmapped
cut fua-write-back-powercut true "write -f -P 0xfd 0 8M" check_fua
# The harness loses what was not synced (else the passes above would prove nothing).
cut harness-loses-unsynced true "write -P 0xfd 0 8M" check_lost

echo "$pass passed, $fail failed"
((fail == 0))
