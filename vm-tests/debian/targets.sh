# shellcheck shell=bash
# Target adapters for run.sh: start/stop/restart/reload the iSCSI target under test on
# 127.0.0.1:$PORT. TARGET=rustiscsi (default) runs rustiscsid with the scenario's TOML;
# TARGET=tgt runs a private tgtd instance set up by the scenario's tgt_setup.
# Uses: WORK, PORT, IQN, LUN_SIZE. Sets: DISK_LUN (the LUN the guest should use).

TARGET_PID=""

# wait_listen SECS: until something accepts on $TARGET_HOST:$PORT (and the target still runs).
wait_listen() {
    local i
    for ((i = 0; i < $1 * 10; i++)); do
        if (exec 3<>"/dev/tcp/${TARGET_HOST:-127.0.0.1}/$PORT") 2>/dev/null; then return 0; fi
        if [[ -n $TARGET_PID ]] && ! kill -0 "$TARGET_PID" 2>/dev/null; then
            vmt_log "target exited during start-up"; return 1
        fi
        sleep 0.1
    done
    vmt_log "target not listening on ${TARGET_HOST:-127.0.0.1}:$PORT after $1 s"; return 1
}

# stop_pid PID SECS: TERM, wait, KILL.
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    vmt_log "pid $pid ignored SIGTERM for $2 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# A sparse file of LUN_SIZE bytes for targets that do not create their own.
make_disk() { truncate -s "$LUN_SIZE" "$1"; }

# ---------------------------------------------------------------- rustiscsid
RUSTISCSID=${RUSTISCSID:-$VMT_ROOT/target/release/rustiscsid}

rustiscsi_prepare() {
    DISK_LUN=${DISK_LUN:-0}
    [[ -x $RUSTISCSID ]] || { vmt_log "rustiscsid not found at $RUSTISCSID (cargo build --release, or set RUSTISCSID)"; return 1; }
    mkdir -p "$WORK/state" "$WORK/secrets"
    rustiscsi_config > "$WORK/rustiscsid.toml"
}
rustiscsi_start() {
    local netns=()
    [[ -n ${TARGET_NETNS:-} ]] && netns=(ip netns exec "$TARGET_NETNS")
    RUST_LOG=${RUST_LOG:-info} "${netns[@]}" "$RUSTISCSID" --config "$WORK/rustiscsid.toml" >>"$WORK/target.log" 2>&1 &
    TARGET_PID=$!
    wait_listen 15
}
rustiscsi_stop() { stop_pid "$TARGET_PID" 10; TARGET_PID=""; }
rustiscsi_reload() { kill -HUP "$TARGET_PID"; }

# ---------------------------------------------------------------- tgt
TGTADM() { tgtadm -C "$PORT" --lld iscsi "$@"; }
tgt_prepare() { DISK_LUN=${DISK_LUN:-1}; }   # tgt's LUN 0 is its controller
tgt_start() {
    tgtd -f -C "$PORT" --iscsi "portal=127.0.0.1:$PORT" >>"$WORK/target.log" 2>&1 &
    TARGET_PID=$!
    local i
    for ((i = 0; i < 100; i++)); do
        tgtadm -C "$PORT" --mode system --op show >/dev/null 2>&1 && break
        kill -0 "$TARGET_PID" 2>/dev/null || { vmt_log "tgtd exited"; return 1; }
        sleep 0.1
    done
    (set -e; tgt_setup) >>"$WORK/target.log" 2>&1 || { vmt_log "tgt_setup failed"; return 1; }
    wait_listen 10
}
tgt_stop() {
    [[ -n $TARGET_PID ]] || return 0
    # tgtd ignores SIGTERM: delete the target, then the daemon.
    timeout 5 tgtadm -C "$PORT" --lld iscsi --mode target --op delete --force --tid 1 >/dev/null 2>&1 || true
    timeout 5 tgtadm -C "$PORT" --mode system --op delete >/dev/null 2>&1 || true
    local i
    for ((i = 0; i < 30; i++)); do kill -0 "$TARGET_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$TARGET_PID" 2>/dev/null || true
    wait "$TARGET_PID" 2>/dev/null || true
    TARGET_PID=""
}
tgt_reload() { vmt_log "tgt adapter: no reload"; return 1; }
# tgt_basic_target: target tid 1 = $IQN, LUN 1 = a sparse LUN_SIZE file, open to everyone.
tgt_basic_target() {
    make_disk "$WORK/disk0.img"
    TGTADM --mode target --op new --tid 1 -T "$IQN"
    TGTADM --mode logicalunit --op new --tid 1 --lun 1 -b "$WORK/disk0.img"
    TGTADM --mode target --op bind --tid 1 -I ALL
}

# tgt_acl_target [USER PASS [MUTUAL-USER MUTUAL-PASS]]: disk0 as LUN 1, bound to $INITIATOR
# only, with CHAP (and mutual CHAP) accounts when given.
tgt_acl_target() {
    make_disk "$WORK/disk0.img"
    TGTADM --mode target --op new --tid 1 -T "$IQN"
    TGTADM --mode logicalunit --op new --tid 1 --lun 1 -b "$WORK/disk0.img"
    TGTADM --mode target --op bind --tid 1 -Q "$INITIATOR"
    [[ -n ${1:-} ]] || return 0
    TGTADM --mode account --op new --user "$1" --password "$2"
    TGTADM --mode account --op bind --tid 1 --user "$1"
    [[ -n ${3:-} ]] || return 0
    TGTADM --mode account --op new --user "$3" --password "$4"
    TGTADM --mode account --op bind --tid 1 --user "$3" --outgoing
}

# ---------------------------------------------------------------- dispatch
target_prepare() { "${TARGET}_prepare"; }
target_start() { "${TARGET}_start"; }
target_stop() { "${TARGET}_stop"; }
target_restart() { "${TARGET}_stop"; "${TARGET}_start"; }
target_reload() { "${TARGET}_reload"; }
