# shellcheck shell=bash
# shellcheck disable=SC2034,SC2016  # SCENARIO_* are read by run.sh; tg takes code for the target guest
# lvm_extend (guest-target mode, guest-target.sh): while the kernel initiator writes and
# verifies LUN 1 (the LVM volume, 64 MiB), the volume is grown with `lvextend -L 96M`. The
# daemon notices the new size by itself and the initiator gets CAPACITY DATA HAS CHANGED in its
# running session (kernel: "Capacity data has changed"); a rescan of the device, no new login,
# shows 96 MiB; data written to the new space lands on the volume; no I/O failed.
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=480
# shellcheck source-path=SCRIPTDIR/.. source=guest-target.sh
. "$VMT_DIR/guest-target.sh"

host_event_lv_extend() { gt_acked lv_extend tg 'lv_extend 96'; }
grown_data() { tg 'has_pattern "$LV_PATH" /scenario/pat0.bin 80'; }
host_event_grown_data() { gt_acked grown_data grown_data; }

guest_part() {
    gt_guest_lib
    cat <<'GUEST'
ua_seen() { # the kernel logged the unit attention for LUN 1 (up to 60 s)
    i=0
    until dmesg | grep -q ":1: Capacity data has changed"; do
        i=$((i + 1)); [ $i -gt 120 ] && return 1; sleep 0.5
    done
    dmesg | grep "Capacity data has changed"
}
target_says() { # BSG BYTES: READ CAPACITY(16) straight to the target
    sg_readcap -l "$1" | tee /tmp/rc.out | grep -q "Device size: $2 bytes"
}
rescanned_size() { # DEV BYTES: after a rescan of the SCSI device the disk has the new size
    echo 1 > "/sys/block/${1#/dev/}/device/rescan"
    i=0
    until [ "$(blockdev --getsize64 "$1")" = "$2" ]; do
        i=$((i + 1)); [ $i -gt 100 ] && { blockdev --getsize64 "$1"; return 1; }; sleep 0.1
    done
}
guest_main() {
    gt_login
    check vol_size readcap_is "$VOL" "$LV_BYTES"
    dmesg -c > /dev/null
    SID=$(session_id)
    io_start vol "$VOL" 8 8
    check io_running io_more vol 2
    host_step lv_extended lv_extend
    check capacity_changed_ua ua_seen
    check io_after_extend io_more vol 2
    check target_reports_96m target_says "$(bsg_of 1)" $((96 << 20))
    check same_session ev "[ \"\$(session_id)\" = '$SID' ]"
    check rescan_96m rescanned_size "$VOL" $((96 << 20))
    check write_new_space put "$VOL" /scenario/pat0.bin 80
    check read_new_space got "$VOL" /scenario/pat0.bin 80
    host_step new_space_on_volume grown_data
    io_stop vol
    check no_io_error io_clean vol
    check data_holds io_slots_hold vol "$VOL" 8 8
    check no_new_login ev "[ \"\$(session_id)\" = '$SID' ] && [ \$(iscsiadm -m session | wc -l) = 1 ]"
    check logout logout
}
GUEST
}
