# shellcheck shell=bash
# shellcheck disable=SC2034,SC2016  # DISK_LUN is read by run.sh; tg takes code for the target guest
# Guest-target mode of the runner: rustiscsid itself runs inside a second QEMU guest (TCG), on
# real md RAID1 and LVM storage that the Debian guest kernel has and the host kernel lacks.
# A scenario opts in by sourcing this file at its top level; that overrides, for that scenario
# only, the target adapter of targets.sh (target_prepare/start/stop/restart/reload).
#
#  host                     target guest (QEMU, Debian kernel, base initramfs + layers)
#  run.sh ── tg CMD ──────> ttyS1: agent.sh (target-lib.sh: mdadm, lvm, dmsetup, udevd)
#     │   <── OUT/RC ──────        rustiscsid --config /scenario/rustiscsid.toml on 10.0.2.15:3260
#     │                     ttyS2 -> target.log (the daemon's log)   ttyS0 -> target-console.log
#     │                     virtio disks raid-a + raid-b (md RAID1 "nas:iscsi"), pv0 (LVM vg0/vm1)
#     │                     hostfwd 127.0.0.1:PORT -> 10.0.2.15:3260
#     └── initiator guest (run.sh, unchanged): guestfwd 10.0.2.100:3260 -> socat -> 127.0.0.1:PORT
#
# The daemon binary is $RUSTISCSID (target/release/rustiscsid) with its ldd libraries; mdadm,
# lvm2, dmsetup, udev and the kernel come from the host's Debian packages
# (guest-target/build-overlay.sh). Nothing leaves loopback.
#
# For scenario files: `tg [-t SECS] 'SHELL LINE'` runs a line in the target guest (target-lib.sh
# functions defined) and returns its exit status; `target_setup` (override it) prints the line
# the target guest runs at boot before the daemon starts (default: storage_create); `toml_nas`
# renders the config.
# Host events the initiator waits for (`host_do NAME` in initiator-lib.sh) end with
# `gt_acked NAME CMD...`: CMD runs, then its exit status goes to the initiator guest through
# the mailbox (the last 4 KiB of LUN 2, written in the target guest, read by the initiator
# with O_DIRECT), so the initiator knows the event is over. Defined here: `restart`,
# `daemon_unchanged`, `log_mark`.

GT_DIR=$VMT_DIR/guest-target
GT_MEM=${GT_MEM:-512}
GT_QEMU_PID="" GT_R="" GT_W="" GT_SEQ=0 GT_DAEMON_PID="" GT_LOG_MARK=0 GT_ACKS=0
# What target-lib.sh creates: the array (32 MiB) and the volume (64 MiB).
RAID_BYTES=$((32 << 20))
LV_BYTES=$((64 << 20))
CHAP_USER=workstation CHAP_SECRET=ws-secret-0123 MUTUAL_USER=nas-storage MUTUAL_SECRET=nas-secret-4567

# toml_nas: the daemon's config in the target guest, in the shape of examples/nas.toml: the
# md array by its udev by-id name (LUN 0), the LVM volume (LUN 1), a sparse file (LUN 2,
# read-only for the initiator; its last 4 KiB are the mailbox of gt_ack), CHAP + mutual CHAP.
toml_nas() {
    cat <<TOML
[daemon]
portals = ["10.0.2.15:3260"]
state_dir = "/var/lib/rustiscsi"
control_socket = "/run/rustiscsi/control.sock"

[iscsi]
header_digest = ["CRC32C", "None"]
data_digest = ["CRC32C", "None"]

# The md RAID1 array: size and block size come from the device.
[backstores.raid]
kind = "block"
path = "/dev/disk/by-id/md-name-nas:iscsi"

# An LVM logical volume.
[backstores.vm1]
kind = "block"
path = "/dev/vg0/vm1"
write_cache = false

# A sparse file, created by the daemon on the guest's RAM root.
[backstores.archive]
kind = "fileio"
path = "/srv/iscsi/archive.img"
size = "16M"

[targets."$IQN"]
luns = [
    { lun = 0, backstore = "raid" },
    { lun = 1, backstore = "vm1" },
    { lun = 2, backstore = "archive" },
]
allowed_networks = ["10.0.2.0/24"]

[targets."$IQN".acls."$INITIATOR"]
mapped_luns = [{ lun = 0 }, { lun = 1 }, { lun = 2, read_only = true }]
chap = { user = "$CHAP_USER", password_file = "/scenario/secrets/initiator" }
mutual_chap = { user = "$MUTUAL_USER", password_file = "/scenario/secrets/mutual" }
TOML
}
rustiscsi_config() { toml_nas; }
# target_setup: the shell line the target guest runs at boot, before the daemon starts.
target_setup() { echo storage_create; }
guest_env() {
    printf "CHAP_USER='%s'\nCHAP_SECRET='%s'\nMUTUAL_USER='%s'\nMUTUAL_SECRET='%s'\nRAID_BYTES=%s\nLV_BYTES=%s\n" \
        "$CHAP_USER" "$CHAP_SECRET" "$MUTUAL_USER" "$MUTUAL_SECRET" "$RAID_BYTES" "$LV_BYTES"
}
# gt_guest_lib: the initiator-side helpers, for a scenario's guest_part to print first.
gt_guest_lib() { cat "$GT_DIR/initiator-lib.sh"; }

# ---------------------------------------------------------------- the control channel
# gt_line SECS: the next complete line from the agent into GT_LINE (1 on timeout or when the
# target guest is gone). Partial lines are kept across read timeouts.
GT_PART=""
gt_line() {
    local deadline=$((SECONDS + $1)) l
    while ((SECONDS < deadline)); do
        if IFS= read -r -t 2 -u "$GT_R" l; then
            GT_LINE=${GT_PART}${l%$'\r'}
            GT_PART=""
            return 0
        fi
        GT_PART+=$l
        kill -0 "$GT_QEMU_PID" 2>/dev/null || return 1
    done
    return 1
}
# tg [-t SECS] LINE: runs LINE in the target guest (default limit 60 s); prints its output and
# returns its exit status (124/143 when the guest timed it out, 125 when the agent did not
# answer).
tg() {
    local t=60 id rc
    if [[ $1 == -t ]]; then t=$2; shift 2; fi
    [[ -n $GT_QEMU_PID ]] || { echo "tg: no target guest"; return 125; }
    id=$((++GT_SEQ))
    echo "tg[$id]: $*"
    printf 'CMD %s %s %s\n' "$id" "$t" "$(printf '%s' "$*" | base64 -w0)" >&"$GT_W"
    while gt_line $((t + 30)); do
        case $GT_LINE in
            "OUT $id "*) echo "  ${GT_LINE#"OUT $id "}" ;;
            "RC $id "*) rc=${GT_LINE#"RC $id "}; echo "tg[$id]: rc=$rc"; return "$rc" ;;
        esac
    done
    echo "tg[$id]: no answer from the target guest"
    return 125
}

# ---------------------------------------------------------------- the target guest
gt_layers() { # once per run: the storage layer (cached) and the daemon layer
    if [[ ! -s $RUNDIR/gt-storage.cpio.gz ]]; then
        "$GT_DIR/build-overlay.sh" storage "$RUNDIR/gt-storage.cpio.gz" || return 1
    fi
    if [[ ! -s $RUNDIR/gt-daemon.cpio.gz ]]; then
        "$GT_DIR/build-overlay.sh" daemon "$RUSTISCSID" "$RUNDIR/gt-daemon.cpio.gz" || return 1
    fi
}
target_prepare() {
    DISK_LUN=0
    [[ -x $RUSTISCSID ]] || { vmt_log "rustiscsid not found at $RUSTISCSID (cargo build --release, or set RUSTISCSID)"; return 1; }
    gt_layers || return 1
    local s=$WORK/gt/scenario p
    mkdir -p "$s/secrets"
    cp "$GT_DIR/agent.sh" "$s/run.sh"
    cp "$GT_DIR/target-lib.sh" "$s/target-lib.sh"
    target_setup > "$s/setup"
    rustiscsi_config > "$s/rustiscsid.toml"
    printf '%s\n' "$CHAP_SECRET" > "$s/secrets/initiator"
    printf '%s\n' "$MUTUAL_SECRET" > "$s/secrets/mutual"
    chmod 600 "$s/secrets/"*
    "$RUSTISCSID" --check --config "$s/rustiscsid.toml" >>"$WORK/host-events.log" 2>&1 ||
        { vmt_log "rustiscsid --check refused the guest config"; return 1; }
    # Random data both guests hold: the initiator writes it, the target checks where it landed.
    for p in pat0 pat1; do
        head -c $((1 << 20)) /dev/urandom > "$s/$p.bin"
        cp "$s/$p.bin" "$WORK/cpio/scenario/$p.bin"
    done
    (cd "$WORK/gt" && find scenario | cpio -o -H newc --quiet --owner 0:0) | gzip -1 > "$WORK/gt-scenario.cpio.gz"
    cat "$RUNDIR/base.cpio.gz" "$RUNDIR/gt-storage.cpio.gz" "$RUNDIR/gt-daemon.cpio.gz" \
        "$WORK/gt-scenario.cpio.gz" > "$WORK/target-initrd"
    truncate -s 48M "$WORK/raid-a.img" "$WORK/raid-b.img"
    truncate -s 160M "$WORK/pv0.img"
}
# gt_boot: starts the target guest; its agent sets up the storage and starts the daemon.
# no_timer_check: on a loaded host the TCG guest can miss the kernel's IO-APIC timer check
# ("IO-APIC + timer doesn't work!", a panic at boot); the check proves nothing here.
gt_boot() {
    local d drives=()
    rm -f "$WORK/tctl.in" "$WORK/tctl.out"
    mkfifo "$WORK/tctl.in" "$WORK/tctl.out"
    exec {GT_W}<>"$WORK/tctl.in" {GT_R}<>"$WORK/tctl.out"
    for d in raid-a raid-b pv0; do
        drives+=(-drive "file=$WORK/$d.img,format=raw,if=none,id=$d,cache=unsafe"
                 -device "virtio-blk-pci,drive=$d,serial=$d")
    done
    : > "$WORK/target-console.log"
    qemu-system-x86_64 -accel tcg -cpu max -m "$GT_MEM" -smp 1 \
        -nodefaults -no-user-config -display none -no-reboot \
        -kernel "$KERNEL" -initrd "$WORK/target-initrd" \
        -append "console=ttyS0 quiet loglevel=4 panic=1 oops=panic no_timer_check" \
        -serial "file:$WORK/target-console.log" -chardev "pipe,id=ctl,path=$WORK/tctl" -serial chardev:ctl \
        -serial "file:$WORK/target.log" \
        -netdev "user,id=n0,restrict=on,ipv6=off,hostfwd=tcp:127.0.0.1:$PORT-10.0.2.15:3260" \
        -device virtio-net-pci,netdev=n0 "${drives[@]}" \
        </dev/null >"$WORK/target-qemu.log" 2>&1 &
    GT_QEMU_PID=$!
}
# gt_ready: waits for the agent's "READY <rc>" (storage set up, daemon listening when rc is 0)
# and records the daemon's pid.
gt_ready() {
    while gt_line 240; do
        case $GT_LINE in
            "READY 0") gt_daemon_pid; return ;;
            READY\ *) echo "target guest: setup failed (${GT_LINE#READY }; target-console.log, target.log)"; return 1 ;;
        esac
    done
    echo "target guest did not come up (target-console.log, target-qemu.log)"
    return 1
}
gt_daemon_pid() { # (not in a subshell: tg counts its command ids in GT_SEQ)
    tg daemon_pid > "$WORK/daemon-pid.out" || return 1
    GT_DAEMON_PID=$(sed -n 's/^  \([0-9][0-9]*\)$/\1/p' "$WORK/daemon-pid.out")
    echo "rustiscsid pid in the target guest: $GT_DAEMON_PID"
    [[ -n $GT_DAEMON_PID ]]
}
# The target guest boots while the initiator guest does (they share nothing until the login,
# which the initiator retries): target_start only starts QEMU, and the initiator's first host
# event, target_ready, waits for the agent.
target_start() { [[ -n $GT_QEMU_PID ]] || gt_boot; }
# When the target guest cannot serve, the initiator guest would only wait for a login that
# never comes: stop it (qemu_pid is run_scenario's), so the scenario fails at once.
host_event_target_ready() {
    gt_ready && return 0
    [[ -n ${qemu_pid:-} ]] && kill "$qemu_pid" 2>/dev/null
    return 1
}
target_stop() {
    [[ -n $GT_QEMU_PID ]] || return 0
    # The daemon's normal SIGTERM path, then the guest.
    tg -t 20 daemon_stop >>"$WORK/host-events.log" 2>&1 || true
    stop_pid "$GT_QEMU_PID" 3
    GT_QEMU_PID=""
}
target_restart() { tg daemon_stop && tg daemon_start && gt_daemon_pid; }
target_reload() { tg 'kill -HUP "$(daemon_pid)"'; }

# ---------------------------------------------------------------- host events
# gt_acked NAME CMD...: runs CMD, then acknowledges NAME with CMD's exit status in the mailbox
# ("ACK <n> NAME <rc>", n counting the acknowledged events); returns CMD's status.
gt_acked() {
    local name=$1 rc=0
    shift
    "$@" || rc=$?
    GT_ACKS=$((GT_ACKS + 1))
    tg "mailbox_put 'ACK $GT_ACKS $name $rc'" || return 1
    return "$rc"
}
host_event_restart() { gt_acked restart target_restart; }
# The daemon still runs with the pid it had after its last start: it never crashed and was
# never restarted.
daemon_unchanged() { tg "daemon_alive && [ \"\$(daemon_pid)\" = '$GT_DAEMON_PID' ]"; }
host_event_daemon_unchanged() { gt_acked daemon_unchanged daemon_unchanged; }
log_mark() { GT_LOG_MARK=$(wc -l < "$WORK/target.log"); echo "target.log mark: line $GT_LOG_MARK"; }
host_event_log_mark() { gt_acked log_mark log_mark; }
# log_since_mark: the daemon's log lines written since the last log_mark.
log_since_mark() { tail -n +$((GT_LOG_MARK + 1)) "$WORK/target.log" | tr -d '\r'; }
