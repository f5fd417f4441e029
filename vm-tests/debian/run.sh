#!/bin/bash
# Runs iSCSI scenarios: the Linux kernel initiator (open-iscsi) in a QEMU/TCG guest against a
# target on the host's 127.0.0.1. One guest boot per scenario. Ends with "N passed, M failed".
#
# Usage: run.sh [SCENARIO...]      (none: every scenario that is not pending and that the
#                                    chosen TARGET supports)
#        run.sh --list             scenarios, their targets, active/pending
#        run.sh --config SCENARIO  print the rustiscsid TOML it uses (WORK=/tmp/vmt-example)
# Env:   TARGET=rustiscsi|tgt   RUSTISCSID=path (default target/release/rustiscsid)
#        VM_TIMEOUT=secs per scenario (default: the scenario's, else 150)  VM_MEM=512  VM_SMP=1
#        KEEP_WORK=1 keep temp dirs   VERBOSE=1 show the guest console live   KVER, RUST_LOG
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=targets.sh
. "$VMT_DIR/targets.sh"

TARGET=${TARGET:-rustiscsi}
VM_MEM=${VM_MEM:-512}
VM_SMP=${VM_SMP:-1}
SCEN_DIR=$VMT_DIR/scenarios
GUEST_PORTAL=10.0.2.100:3260
# A second guest address, forwarded to 127.0.0.1:$PORT2, where nothing listens unless a
# scenario makes the target listen there (live_portal).
GUEST_PORTAL2=10.0.2.101:3260
case $TARGET in rustiscsi | tgt) ;; *) vmt_die "TARGET must be rustiscsi or tgt" ;; esac

pending() { grep -qx "$1" <(sed 's/#.*//; s/[[:space:]]//g' "$SCEN_DIR/pending.list"); }
all_scenarios() { local f; for f in "$SCEN_DIR"/*.sh; do basename "$f" .sh; done; }
supports() { # SCENARIO: does it run against $TARGET?
    local t
    t=$(sed -n 's/^SCENARIO_TARGETS="\(.*\)"/\1/p' "$SCEN_DIR/$1.sh")
    [[ " ${t:-rustiscsi} " == *" $TARGET "* ]]
}

if [[ ${1:-} == --list || ${1:-} == -l ]]; then
    for s in $(all_scenarios); do
        printf '%-22s targets: %-14s %s\n' "$s" \
            "$(sed -n 's/^SCENARIO_TARGETS="\(.*\)"/\1/p' "$SCEN_DIR/$s.sh" | tr ' ' ,)" \
            "$(pending "$s" && echo pending || echo active)"
    done
    exit 0
fi

# Helpers for scenario host parts ---------------------------------------------------------
# secret_file NAME VALUE: writes a CHAP secret file, prints its path.
secret_file() { mkdir -p "$WORK/secrets"; printf '%s\n' "$2" > "$WORK/secrets/$1"; chmod 600 "$WORK/secrets/$1"; echo "$WORK/secrets/$1"; }
# toml_daemon: the [daemon] table for this run (plus the scenario's TOML_DAEMON_EXTRA lines).
toml_daemon() {
    cat <<TOML
[daemon]
portals = ["$TARGET_HOST:$PORT"]
state_dir = "$WORK/state"
control_socket = "$WORK/control.sock"
TOML
    [[ -z ${TOML_DAEMON_EXTRA:-} ]] || printf '%s\n' "$TOML_DAEMON_EXTRA"
}
# toml_acl_target [LINE...]: daemon, disk0 as LUN 0 and an ACL for $INITIATOR whose table
# holds the given lines (e.g. its CHAP credentials).
toml_acl_target() {
    toml_daemon
    toml_fileio disk0
    cat <<TOML

[targets."$IQN"]
luns = [{ lun = 0, backstore = "disk0" }]

[targets."$IQN".acls."$INITIATOR"]
TOML
    (($#)) && printf '%s\n' "$@"
    return 0
}
# toml_fileio NAME [BYTES]: a sparse fileio backstore in the work dir (created by the daemon).
toml_fileio() {
    local size=${2:-$LUN_SIZE}
    ((size % 1048576)) || size="$((size / 1048576))M"
    cat <<TOML

[backstores.$1]
kind = "fileio"
path = "$WORK/$1.img"
size = "$size"
TOML
}

scenario_defaults() { # NAME: what a scenario file may override at its top level
    IQN="iqn.2026-11.org.example.rustiscsi:${1//_/-}"   # IQNs have no underscores (RFC 3722)
    INITIATOR="iqn.2005-03.org.open-iscsi:vmtest"
    LUN_SIZE=268435456
    SCENARIO_TIMEOUT=150
    DISK_LUN=""
    # Where the target listens and socat connects (scenario_setup may move it, e.g. onto
    # a veth in a network namespace: TARGET_NETNS then runs rustiscsid inside it).
    TARGET_HOST=127.0.0.1
    TARGET_NETNS=""
    TOML_DAEMON_EXTRA=""
    guest_env() { :; }
    scenario_setup() { :; }
    scenario_cleanup() { :; }
}

if [[ ${1:-} == --config ]]; then
    [[ -f $SCEN_DIR/${2:-}.sh ]] || vmt_die "usage: $0 --config SCENARIO"
    WORK=/tmp/vmt-example PORT=3260
    scenario_defaults "$2"
    # shellcheck source=/dev/null
    . "$SCEN_DIR/$2.sh"
    WORK=$(mktemp -d) # secret files land here, not in the example path
    out=$(rustiscsi_config)
    rm -rf "$WORK"
    echo "${out//$WORK//tmp/vmt-example}"
    exit 0
fi

selected=()
if (($#)); then
    for s in "$@"; do
        [[ -f $SCEN_DIR/$s.sh ]] || vmt_die "no scenario $s (see --list)"
        supports "$s" || vmt_die "scenario $s does not support TARGET=$TARGET"
        pending "$s" && vmt_log "note: $s is pending (listed in scenarios/pending.list); running it as asked"
        selected+=("$s")
    done
else
    for s in $(all_scenarios); do
        pending "$s" || ! supports "$s" || selected+=("$s")
    done
fi
((${#selected[@]})) || vmt_die "no scenario selected"

pkgs=(qemu-system-x86 socat cpio)
[[ $TARGET == tgt ]] && pkgs+=(tgt)
ensure_packages "${pkgs[@]}"
KVER=$(pick_kver)
KERNEL=/boot/vmlinuz-$KVER
RUNDIR=$(mktemp -d "${TMPDIR:-/tmp}/vm-tests.XXXXXX")
[[ $RUNDIR != *[[:space:],]* ]] || vmt_die "temp dir path must not contain spaces or commas: $RUNDIR"
cleanup_run() { [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$RUNDIR"; }
trap cleanup_run EXIT
SCEN_PID=""
on_signal() { # stop the running scenario (its own traps stop QEMU and the target), then exit
    if [[ -n $SCEN_PID ]]; then kill -TERM "$SCEN_PID" 2>/dev/null || true; wait "$SCEN_PID" 2>/dev/null || true; fi
    vmt_log "interrupted"
    exit 130
}
trap on_signal INT TERM
"$VMT_DIR/build-initramfs.sh" "$RUNDIR/base.cpio.gz"

free_port() {
    local p _
    for _ in {1..200}; do
        p=$((20000 + RANDOM % 12000))   # < 32768: tgtd -C takes the port as its instance number
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}

# run_scenario NAME: one guest boot; prints the per-step result lines; exit 0 = passed.
run_scenario() {
    local name=$1
    WORK=$RUNDIR/$name
    mkdir -p "$WORK/cpio/scenario"
    scenario_defaults "$name"
    # shellcheck source=/dev/null
    . "$SCEN_DIR/$name.sh"
    local timeout_s=${VM_TIMEOUT:-$SCENARIO_TIMEOUT}
    PORT=$(free_port) || { echo "RESULT $name host FAIL no-free-port"; return 1; }
    PORT2=$(free_port) || { echo "RESULT $name host FAIL no-free-port"; return 1; }

    # Not local: the EXIT trap below runs after this function has returned.
    qemu_pid="" started=$SECONDS
    cleanup_scenario() {
        [[ -n $qemu_pid ]] && stop_pid "$qemu_pid" 3
        qemu_pid=""
        target_stop || true
        scenario_cleanup >>"$WORK/host-events.log" 2>&1 || true
    }
    trap cleanup_scenario EXIT
    trap 'exit 130' INT TERM

    if ! scenario_setup >>"$WORK/host-events.log" 2>&1; then
        echo "RESULT $name scenario_setup FAIL see host-events.log"
        return 1
    fi
    if ! target_prepare || ! target_start; then
        echo "RESULT $name target_start FAIL see target log"
        return 1
    fi

    # The scenario's guest part, appended to the base initramfs as a second cpio archive.
    {
        printf "SCENARIO='%s'\nIQN='%s'\nINITIATOR='%s'\nPORTAL='%s'\nPORTAL2='%s'\nDISK_LUN='%s'\nLUN_SIZE='%s'\nTARGET='%s'\n" \
            "$name" "$IQN" "$INITIATOR" "$GUEST_PORTAL" "$GUEST_PORTAL2" "$DISK_LUN" "$LUN_SIZE" "$TARGET"
        guest_env
    } > "$WORK/cpio/scenario/env"
    cp "$VMT_DIR/guest/guest-lib.sh" "$WORK/cpio/scenario/guest-lib.sh"
    guest_part > "$WORK/cpio/scenario/guest.sh"
    cat > "$WORK/cpio/scenario/run.sh" <<'SH'
set -a
. /scenario/env
. /scenario/guest-lib.sh
. /scenario/guest.sh
guest_main
finish
SH
    (cd "$WORK/cpio" && find scenario | cpio -o -H newc --quiet --owner 0:0) | gzip -1 > "$WORK/scenario.cpio.gz"
    cat "$RUNDIR/base.cpio.gz" "$WORK/scenario.cpio.gz" > "$WORK/initrd"

    : > "$WORK/results.log"
    : > "$WORK/console.log"
    qemu-system-x86_64 -accel tcg -cpu max -m "$VM_MEM" -smp "$VM_SMP" \
        -nodefaults -no-user-config -display none -no-reboot \
        -kernel "$KERNEL" -initrd "$WORK/initrd" \
        -append "console=ttyS0 quiet loglevel=4 panic=1 oops=panic no_timer_check" \
        -serial "file:$WORK/console.log" -serial "file:$WORK/results.log" \
        -netdev "user,id=n0,restrict=on,ipv6=off,guestfwd=tcp:${GUEST_PORTAL}-cmd:socat -lf $WORK/socat.log STDIO TCP4:$TARGET_HOST:$PORT,guestfwd=tcp:${GUEST_PORTAL2}-cmd:socat -lf $WORK/socat2.log STDIO TCP4:127.0.0.1:$PORT2" \
        -device virtio-net-pci,netdev=n0 \
        </dev/null >"$WORK/qemu.log" 2>&1 &
    qemu_pid=$!
    local tail_pid=""
    if [[ ${VERBOSE:-0} == 1 ]]; then tail -n +1 -f "$WORK/console.log" >&2 & tail_pid=$!; fi

    local seen=0 done_line="" line status="" deadline=$((SECONDS + timeout_s))
    local -a lines
    while :; do
        mapfile -t lines < "$WORK/results.log"
        # Only complete lines: drop a last line that is still being written.
        if ((${#lines[@]})) && [[ -n $(tail -c1 "$WORK/results.log") ]]; then unset 'lines[-1]'; fi
        for ((; seen < ${#lines[@]}; seen++)); do
            line=${lines[seen]//$'\r'/}
            case $line in
                RESULT\ *) echo "$line" ;;
                HOST\ *)
                    local ev=${line#HOST }
                    vmt_log "$name: host event '$ev'"
                    if declare -F "host_event_$ev" >/dev/null && "host_event_$ev" >>"$WORK/host-events.log" 2>&1; then
                        echo "RESULT $name host_$ev PASS"
                    else
                        echo "RESULT $name host_$ev FAIL see host-events.log"
                    fi ;;
                DONE\ *) done_line=$line ;;
            esac
        done
        [[ -n $done_line ]] && break
        if ! kill -0 "$qemu_pid" 2>/dev/null; then
            sleep 0.2
            mapfile -t lines < "$WORK/results.log"
            ((${#lines[@]} > seen)) && continue
            status="guest-exited-without-DONE"; break
        fi
        ((SECONDS < deadline)) || { status="timeout-${timeout_s}s"; break; }
        sleep 0.2
    done
    [[ -n $tail_pid ]] && { kill "$tail_pid" 2>/dev/null || true; }
    # Give the guest a moment to power off by itself, then stop everything.
    local i
    for ((i = 0; i < 20; i++)); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
    cleanup_scenario
    trap - EXIT
    echo "TIME $name $((SECONDS - started))"
    if [[ -n $status ]]; then echo "RESULT $name harness FAIL $status"; return 1; fi
    [[ $done_line == "DONE $name 0" ]]
}

dump_failure() { # NAME: the logs that explain a failure
    local w=$RUNDIR/$1 f
    for f in console.log target.log socat.log qemu.log host-events.log; do
        [[ -s $w/$f ]] || continue
        echo "----- $1: $f (last 300 lines) -----"
        tail -n 300 "$w/$f"
    done
    echo "----- end of $1 logs (work dir: $w) -----"
}

passed=0 failed=0 summary=()
for s in "${selected[@]}"; do
    vmt_log "scenario $s (TARGET=$TARGET)"
    out=$RUNDIR/$s.out
    mkdir -p "$RUNDIR/$s"
    rc=0
    # In the background so that a signal to this shell is handled at once (see on_signal).
    (run_scenario "$s") > "$out" 2>"$RUNDIR/$s.err" &
    SCEN_PID=$!
    wait "$SCEN_PID" || rc=$?
    SCEN_PID=""
    cat "$RUNDIR/$s.err" >&2
    grep '^RESULT ' "$out" | sed 's/^RESULT [^ ]* /  /' || true
    t=$(sed -n 's/^TIME [^ ]* //p' "$out")
    steps_ok=$(grep -c '^RESULT [^ ]* [^ ]* PASS' "$out" || true)
    steps_bad=$(grep -c '^RESULT [^ ]* [^ ]* FAIL' "$out" || true)
    if ((rc == 0 && steps_bad == 0 && steps_ok > 0)); then
        passed=$((passed + 1)); summary+=("PASS  $s  (${t:-?} s, $steps_ok steps)")
    else
        failed=$((failed + 1)); summary+=("FAIL  $s  (${t:-?} s, $steps_ok steps passed, $steps_bad failed)")
        dump_failure "$s"
        KEEP_WORK=1
    fi
done

echo
echo "== summary (TARGET=$TARGET) =="
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
((failed == 0))
