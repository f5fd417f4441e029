# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# target_restart: the daemon is stopped and started again while a 32 MiB O_DIRECT write is
# running; the initiator reconnects, the write completes and reads back intact, and the
# filesystem written before the restart is still consistent.
SCENARIO_TARGETS="rustiscsi tgt"
SCENARIO_TIMEOUT=150

rustiscsi_config() {
    toml_acl_target
}

tgt_setup() { tgt_basic_target; }

host_event_restart() { sleep 1; target_restart; }

guest_part() {
    cat <<'GUEST'
node_options() {
    # Reconnect quickly and keep queued I/O alive across the outage.
    node_set node.session.timeo.replacement_timeout 60 &&
        node_set 'node.conn[0].timeo.noop_out_interval' 2 &&
        node_set 'node.conn[0].timeo.noop_out_timeout' 2
}
big_write() { # DEV: 32 MiB at 64 MiB, 256 KiB O_DIRECT writes, in the background
    dd if=/dev/urandom of=/tmp/big bs=1M count=32 2>/dev/null
    rm -f /tmp/big.done
    (dd if=/tmp/big of="$1" bs=256K seek=256 oflag=direct conv=notrunc > /tmp/big.log 2>&1
     echo "rc=$?" >> /tmp/big.log; touch /tmp/big.done) &
}
big_write_done() { # wait for the writer; it must have written all 128 blocks
    while [ ! -e /tmp/big.done ]; do sleep 0.5; done
    cat /tmp/big.log
    grep -q "^rc=0" /tmp/big.log && grep -q "^128+0 records out" /tmp/big.log
}
big_read_ok() {
    dd if="$1" of=/tmp/big.back bs=256K skip=256 count=128 iflag=direct 2>/dev/null && cmp /tmp/big /tmp/big.back
}
guest_main() {
    need iscsid_start iscsi_start
    need node_record node_new
    need node_options node_options
    need login login
    need_disk disk_appears
    need mkfs mkfs.ext4 -F -q "$DEV" 32M
    need mount mount -t ext4 "$DEV" /mnt
    check write_files write_files /mnt
    check umount umount /mnt
    SID=$(session_id)
    big_write "$DEV"
    sleep 1
    host_event restart
    STEP_TIMEOUT=120 check write_survives_restart big_write_done
    check same_session ev "[ \"\$(session_id)\" = '$SID' ]"
    check data_after_restart big_read_ok "$DEV"
    check fsck e2fsck -fn "$DEV"
    check mount_again mount -t ext4 "$DEV" /mnt
    check verify_files verify_files /mnt
    check umount2 umount /mnt
    check logout logout
}
GUEST
}
