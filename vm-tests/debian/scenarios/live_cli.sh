# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# live_cli: while the initiator writes and verifies data on LUN 0, the admin changes the
# running target with the rustiscsi CLI: a backstore and LUN 1 are added (they appear after
# a rescan), an unrelated ACL is added and removed, LUN 0 is grown online (the new size shows
# after a rescan, with no new login). The session sees no I/O error and no reconnect.
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=150
LUN_SIZE=$((64 << 20))
GROWN=$((96 << 20))
OTHER="iqn.2026-11.org.example:unrelated"

rustiscsi_config() {
    toml_acl_target
}

cli() { "$(dirname "$RUSTISCSID")/rustiscsi" --socket "$WORK/control.sock" "$@"; }

host_event_add_lun() {
    cli backstore create disk1 --kind fileio --path "$WORK/disk1.img" --size 32M &&
        cli lun add "$IQN" --backstore disk1 --lun 1 && cli status
}
host_event_unrelated_acl() {
    cli acl add "$IQN" "$OTHER" --map 0 && cli acl remove "$IQN" "$OTHER" &&
        ! cli status | grep -q "$OTHER"
}
host_event_grow() { cli backstore resize disk0 --size 96M && [[ $(stat -c %s "$WORK/disk0.img") == "$GROWN" ]]; }
# One session all along: the CLI sees it with its counters moving.
host_event_one_session() {
    cli --json sessions | tee "$WORK/sessions.json"
    [[ $(grep -o '"tsih"' "$WORK/sessions.json" | wc -l) == 1 ]] && grep -q '"write_bytes": *[1-9]' "$WORK/sessions.json"
}

guest_env() { printf "GROWN=%s\n" "$GROWN"; }

guest_part() {
    cat <<'GUEST'
# writer DEV: write 1 MiB of random data at rotating offsets of the first 32 MiB, read it
# back and compare, until /tmp/stop exists; every failure is counted.
writer() {
    : > /tmp/writer.fail
    dd if=/dev/urandom of=/tmp/blk bs=1M count=1 2>/dev/null
    i=0
    while [ ! -e /tmp/stop ]; do
        o=$((i % 32))
        dd if=/tmp/blk of="$1" bs=1M seek=$o count=1 oflag=direct conv=notrunc 2>/dev/null || echo w >> /tmp/writer.fail
        dd if="$1" of=/tmp/back bs=1M skip=$o count=1 iflag=direct 2>/dev/null || echo r >> /tmp/writer.fail
        cmp -s /tmp/blk /tmp/back || echo c >> /tmp/writer.fail
        i=$((i + 1))
    done
    echo "$i" > /tmp/writer.count
}
wait_lun() { # LUN: rescan until it shows
    i=0
    while [ $i -lt 30 ]; do
        rescan >/dev/null 2>&1
        disk_of "$1" >/dev/null && return 0
        sleep 1; i=$((i + 1))
    done
    return 1
}
grown() { # DEV BYTES: rescan the disk until it shows the new capacity
    i=0
    while [ $i -lt 20 ]; do
        echo 1 > "/sys/block/${1##*/}/device/rescan"
        [ "$(blockdev --getsize64 "$1")" = "$2" ] && return 0
        sleep 0.5; i=$((i + 1))
    done
    blockdev --getsize64 "$1"; return 1
}
guest_main() {
    need iscsid_start iscsi_start
    need node_record node_new
    need login login
    need_disk disk_appears 0
    DISK0=$DEV
    SID=$(session_id)
    writer "$DISK0" &
    WRITER=$!
    sleep 2
    host_event add_lun
    check lun1_appears wait_lun 1
    need_disk lun1_disk 1
    check lun1_size ev "[ \"\$(blockdev --getsize64 $DEV)\" = $((32 << 20)) ]"
    check lun1_raw_io raw_io "$DEV" $((32 << 20))
    host_event unrelated_acl
    host_event grow
    check lun0_grown grown "$DISK0" "$GROWN"
    check lun0_tail_io ev "dd if=/dev/urandom of=/tmp/t bs=1M count=1 2>/dev/null && dd if=/tmp/t of=$DISK0 bs=1M seek=95 count=1 oflag=direct conv=notrunc 2>/dev/null"
    host_event one_session
    touch /tmp/stop; wait "$WRITER"
    check writer_ran ev '[ "$(cat /tmp/writer.count)" -gt 5 ]'
    check writer_never_failed ev '[ ! -s /tmp/writer.fail ]'
    check same_session ev "[ \"\$(session_id)\" = '$SID' ]"
    check no_reconnect ev '! dmesg | grep -qi "connection.*error\|session recovery"'
    check logout logout
}
GUEST
}
