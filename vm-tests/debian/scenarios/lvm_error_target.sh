# shellcheck shell=bash
# shellcheck disable=SC2034,SC2016  # SCENARIO_* are read by run.sh; tg takes code for the target guest
# lvm_error_target (guest-target mode, guest-target.sh; issues 13 and 14): the LVM volume
# behind LUN 1 fails under I/O: its table is replaced by device-mapper's `error` target
# (`dmsetup reload` + `resume`). Every later READ and WRITE of LUN 1 (sg_raw, 4 KiB) gets
# CHECK CONDITION with MEDIUM ERROR or NOT READY within its timeout: none returns GOOD, not
# even a read of data written and read just before (a page cache) or of a write that just
# failed; a read through the kernel's block layer fails too instead of hanging. The daemon
# does not crash; LUN 0 (the md array) keeps serving verified I/O; the daemon's log has
# summary lines naming the backstore (vm1), not one per failed command. Restoring the
# table brings LUN 1 back without a restart, with the data from before the failure.
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=480
# shellcheck source-path=SCRIPTDIR/.. source=guest-target.sh
. "$VMT_DIR/guest-target.sh"

host_event_lv_error() { gt_acked lv_error tg lv_error; }
host_event_lv_restore() { gt_acked lv_restore tg lv_restore; }
# The log since the failure (108 or more failed commands by then): summaries, not a line per
# command: at most one line per three failed commands (a rate-limited summary every few seconds
# stays well below that even on a slow run), the first naming the backstore vm1.
log_summarised() {
    local lines
    lines=$(log_since_mark | wc -l)
    echo "daemon log since the failure: $lines lines, $(log_since_mark | grep -c 'vm1') naming vm1:"
    log_since_mark | head -n 40
    ((lines >= 1 && lines <= 36)) && log_since_mark | head -n1 | grep -q 'vm1'
}
host_event_log_summarised() { gt_acked log_summarised log_summarised; }

guest_part() {
    gt_guest_lib
    cat <<'GUEST'
# LBAs (512-byte blocks) of LUN 1: pat1 (1 MiB) at 8 MiB, written and read before the failure;
# a block never touched; the block of the first failed write.
CACHED=16384 UNTOUCHED=81920 FAILED_W=98304
# failing BSG: LUN 1 answers a READ of an untouched block with CHECK CONDITION (up to 30 s).
failing() {
    i=0
    while [ $i -lt 60 ]; do
        r=$(scsi_io "$1" read $UNTOUCHED); echo "read: $r"
        case $r in MEDIUM_ERROR | NOT_READY) return 0 ;; esac
        sleep 0.5; i=$((i + 1))
    done
    return 1
}
# sense_is BSG read|write LBA: the command ends with MEDIUM ERROR or NOT READY.
sense_is() {
    r=$(scsi_io "$1" "$2" "$3"); echo "$2 at $3: $r"
    case $r in MEDIUM_ERROR | NOT_READY) return 0 ;; esac
    return 1
}
# all_fail BSG N: N reads over the cached 1 MiB, N reads elsewhere, N writes: every one ends
# with MEDIUM ERROR or NOT READY; counts what came back.
all_fail() {
    : > /tmp/answers
    i=0
    while [ $i -lt "$2" ]; do
        {
            scsi_io "$1" read $((CACHED + (i % 256) * 8))
            scsi_io "$1" read $((UNTOUCHED + i * 64))
            scsi_io "$1" write $((FAILED_W + i * 64))
        } >> /tmp/answers
        i=$((i + 1))
    done
    scsi_io "$1" read $FAILED_W >> /tmp/answers
    sort /tmp/answers | uniq -c
    ! grep -qv '^MEDIUM_ERROR$\|^NOT_READY$' /tmp/answers
}
block_read_fails() { # a read through the block layer returns an error (not data, not a hang)
    ! dd if="$VOL" of=/dev/null bs=4k count=1 skip=$((UNTOUCHED / 8 + 1)) iflag=direct
}
# back BSG SECS: LUN 1 answers READ with GOOD again.
back() {
    i=0
    while [ $i -lt "$2" ]; do
        r=$(scsi_io "$1" read $UNTOUCHED); echo "read: $r"
        [ "$r" = GOOD ] && return 0
        sleep 1; i=$((i + 1))
    done
    return 1
}
guest_main() {
    gt_login
    B=$(bsg_of 1)
    check vol_write put "$VOL" /scenario/pat1.bin 8
    check vol_read got "$VOL" /scenario/pat1.bin 8
    check vol_sg_good ev "[ \"\$(scsi_io $B read $CACHED)\" = GOOD ]"
    io_start raid "$RAID" 8 8
    check raid_io_running io_more raid 1
    host_step log_marked log_mark
    host_step lv_table_error lv_error
    check lun1_failing failing "$B"
    check first_write_sense sense_is "$B" write $FAILED_W
    check failed_write_not_read_back sense_is "$B" read $FAILED_W
    check cached_read_sense sense_is "$B" read $CACHED
    STEP_TIMEOUT=240 check every_command_fails all_fail "$B" 34
    check block_layer_error block_read_fails
    check raid_io_meanwhile io_more raid 2
    host_step daemon_alive daemon_unchanged
    host_step log_few_lines log_summarised
    host_step lv_table_restored lv_restore
    check lun1_back back "$B" 60
    check data_before_failure got "$VOL" /scenario/pat1.bin 8
    check write_after_restore put "$VOL" /scenario/pat0.bin 48
    check read_after_restore got "$VOL" /scenario/pat0.bin 48
    io_stop raid
    check raid_no_io_error io_clean raid
    check raid_data_holds io_slots_hold raid "$RAID" 8 8
    host_step no_restart daemon_unchanged
    check logout logout
}
GUEST
}
