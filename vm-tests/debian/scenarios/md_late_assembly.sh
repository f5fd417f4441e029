# shellcheck shell=bash
# shellcheck disable=SC2034,SC2016  # SCENARIO_* are read by run.sh; tg takes code for the target guest
# md_late_assembly (guest-target mode, guest-target.sh): the md array holds data but is
# stopped when the daemon starts, so /dev/disk/by-id/md-name-nas:iscsi does not exist. The
# daemon starts anyway and serves LUN 1 (the LVM volume) and LUN 2; LUN 0 is reported and NOT
# READY. 20 s after the daemon started the array is assembled; the daemon brings LUN 0 online
# by itself (no restart, no reload), the initiator reads the data that was on the array and
# writes new data, and LUN 1 served I/O without a failure all along.
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=480
# shellcheck source-path=SCRIPTDIR/.. source=guest-target.sh
. "$VMT_DIR/guest-target.sh"

target_setup() { echo 'storage_create && put_pattern "$RAID_LINK" /scenario/pat0.bin 8 && raid_stop'; }
host_event_raid_assemble() { gt_acked raid_assemble tg -t 90 'raid_assemble_late 20'; }

guest_part() {
    gt_guest_lib
    cat <<'GUEST'
# raid_online SECS: LUN 0 answers READ with GOOD (unit attentions and NOT READY on the way).
raid_online() {
    i=0
    while [ $i -lt "$1" ]; do
        b=$(bsg_of 0) && r=$(scsi_io "$b" read 0) && echo "LUN 0: $r" && [ "$r" = GOOD ] && return 0
        sleep 1; i=$((i + 1))
    done
    return 1
}
# raid_disk_sized: LUN 0's disk (after a rescan of its SCSI device) has the array's size.
raid_disk_sized() {
    i=0
    while [ $i -lt 60 ]; do
        d=$(disk_of 0) && {
            echo 1 > "/sys/block/${d#/dev/}/device/rescan"
            [ "$(blockdev --getsize64 "$d")" = "$RAID_BYTES" ] && { echo "$d"; return 0; }
        }
        sleep 1; i=$((i + 1))
    done
    return 1
}
guest_main() {
    gt_session
    check raid_lun_reported bsg_of 0
    check raid_not_ready ev '[ "$(scsi_io "$(bsg_of 0)" read 0)" = NOT_READY ]'
    io_start vol "$VOL" 8 4
    check vol_served io_more vol 2
    host_step raid_assembled raid_assemble 120
    check vol_served_meanwhile io_more vol 1
    STEP_TIMEOUT=100 check raid_online raid_online 90
    if RAID=$(raid_disk_sized); then pass raid_disk "$RAID"; else fail raid_disk; abort raid_disk; fi
    check raid_readcap readcap_is "$RAID" "$RAID_BYTES"
    check raid_data_kept got "$RAID" /scenario/pat0.bin 8
    check raid_write put "$RAID" /scenario/pat1.bin 24
    check raid_read got "$RAID" /scenario/pat1.bin 24
    io_stop vol
    check vol_no_io_error io_clean vol
    host_step no_restart daemon_unchanged
    check logout logout
}
GUEST
}
