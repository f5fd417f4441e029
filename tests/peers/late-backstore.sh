#!/usr/bin/env bash
# Resilient and exclusive block backstores, with a real loop device: the daemon starts
# while its block device does not exist yet (as when an md array is assembled or an LV
# activated after the daemon), serves the other LUN at once, answers NOT READY for the
# missing one, shows it offline in `rustiscsi status`, and serves it without a restart once
# the device appears 20 s later (losetup, then the udev-style symlink the config names).
# Then a second daemon on the same device is refused (O_EXCL), naming the holder.
#
# Needs root (losetup). Usage: tests/peers/late-backstore.sh
# Last line: "N passed, M failed".
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/peers/lib.sh
. "$HERE/lib.sh"

peers_need_qemu_img
peers_need_pkgs mount
peers_init
[[ $(id -u) = 0 ]] || peers_die "losetup needs root"
bin=$(peers_rustiscsid_bin)
cli=$(dirname "$bin")/rustiscsi
iqn=$PEERS_IQN_BASE:late
dir=$PEERS_WORKDIR/late
mkdir -p "$dir/state"
port=$(peers_free_port)
pass=0 fail=0
loop=""
daemon=""
cleanup() {
    [[ -n $daemon ]] && kill -TERM "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    [[ -n $loop ]] && losetup -d "$loop" 2>/dev/null
    peers_cleanup
}
trap cleanup EXIT

result() { # NAME OK
    if (($2)); then
        printf '%-40s PASS\n' "$1"
        pass=$((pass + 1))
    else
        printf '%-40s FAIL (logs in %s)\n' "$1" "$dir"
        tail -n 5 "$dir/rustiscsid.log" | sed 's/^/    /'
        fail=$((fail + 1))
    fi
}

head -c $((16 << 20)) /dev/zero | tr '\0' '\132' >"$dir/md.img" # 0x5a
cat >"$dir/rustiscsid.toml" <<TOML
[daemon]
portals = ["$PEERS_HOST:$port"]
state_dir = "$dir/state"
control_socket = "$dir/control.sock"

[backstores.late]
kind = "block"
path = "$dir/dev/md-late"

[backstores.other]
kind = "fileio"
path = "$dir/other.img"
size = "8M"

[targets."$iqn"]
luns = [{ lun = 0, backstore = "late" }, { lun = 1, backstore = "other" }]
demo_mode = true
TOML
setsid "$bin" --config "$dir/rustiscsid.toml" </dev/null >"$dir/rustiscsid.log" 2>&1 &
daemon=$!
peers_wait_port "$PEERS_HOST" "$port" 30 "$daemon" || peers_die "rustiscsid did not start (see $dir/rustiscsid.log)"
url="iscsi://$PEERS_HOST:$port/$iqn"
t0=$SECONDS

ok=1
timeout 30 qemu-io -f raw -c "write -P 0x33 0 64k" -c "read -P 0x33 0 64k" "$url/1" >"$dir/other.log" 2>&1 || ok=0
result "other LUN served while one is missing" $ok

ok=1
if timeout 30 qemu-io -f raw -c "read 0 4k" "$url/0" >"$dir/offline.log" 2>&1; then ok=0; fi
grep -qi "not ready\|No medium\|Input/output\|Could not" "$dir/offline.log" || ok=0
result "missing LUN refused (NOT READY)" $ok

ok=1
"$cli" --socket "$dir/control.sock" status >"$dir/status-offline.txt" 2>&1 || ok=0
grep -q "late .*offline" "$dir/status-offline.txt" || ok=0
grep -q "does not exist\|No such file" "$dir/status-offline.txt" || ok=0
result "status: offline with the reason" $ok

# The device appears 20 s after the start.
while ((SECONDS - t0 < 20)); do sleep 1; done
loop=$(losetup -f --show "$dir/md.img")
mkdir -p "$dir/dev"
ln -s "$loop" "$dir/dev/md-late"
appeared=$SECONDS
ok=0
while ((SECONDS - appeared < 30)); do
    if timeout 20 qemu-io -f raw -c "read -P 0x5a 0 1M" "$url/0" >"$dir/online.log" 2>&1; then
        ok=1
        break
    fi
    sleep 1
done
result "served $((SECONDS - appeared)) s after the device appeared" $ok

ok=1
"$cli" --socket "$dir/control.sock" status >"$dir/status-online.txt" 2>&1 || ok=0
grep -q "late .*healthy" "$dir/status-online.txt" || ok=0
grep -q "backstore late online" "$dir/rustiscsid.log" || ok=0
result "status healthy, one log line for the change" $ok

# A second daemon on the same device is refused while the first holds it (O_EXCL).
port2=$(peers_free_port)
sed -e "s|$PEERS_HOST:$port|$PEERS_HOST:$port2|" -e "s|$dir/state|$dir/state2|" \
    -e "s|$dir/control.sock|$dir/control2.sock|" -e "s|$dir/dev/md-late|$loop|" \
    -e "s|$dir/other.img|$dir/other2.img|" "$dir/rustiscsid.toml" >"$dir/second.toml"
ok=1
if timeout 30 "$bin" --config "$dir/second.toml" </dev/null >"$dir/second.log" 2>&1; then ok=0; fi
grep -q "refusing $loop: it is in use by pid $daemon" "$dir/second.log" || ok=0
result "second daemon on the device refused" $ok

echo "$pass passed, $fail failed"
((fail == 0))
