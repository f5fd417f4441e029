# shellcheck shell=bash
# shellcheck disable=SC2034,SC2016  # SCENARIO_* are read by run.sh; tg takes code for the target guest
# md_degraded (guest-target mode, guest-target.sh): while the kernel initiator writes and
# verifies fresh random data on LUN 0 (the md RAID1 array) round after round, one member is
# failed and removed (`mdadm --fail`, `--remove`): the array runs degraded and not one I/O
# error reaches the initiator; the member is added back and md rebuilds it under the same
# I/O (held at 2 MB/s until the initiator has done I/O during it): still none. Afterwards
# both members hold the same data and every slot reads back.
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=480
# shellcheck source-path=SCRIPTDIR/.. source=guest-target.sh
. "$VMT_DIR/guest-target.sh"

host_event_raid_fail() { gt_acked raid_fail tg 'raid_fail "$RAID_A"'; }
host_event_raid_add() { gt_acked raid_add tg 'raid_add "$RAID_A"'; }
host_event_raid_rebuilding() { gt_acked raid_rebuilding tg raid_rebuilding; }
host_event_raid_synced() { gt_acked raid_synced tg -t 200 'raid_wait_synced 180'; }
host_event_members_agree() { gt_acked members_agree tg raid_members_agree; }

guest_part() {
    gt_guest_lib
    cat <<'GUEST'
guest_main() {
    gt_login
    dmesg -c > /dev/null
    io_start raid "$RAID" 8 8
    check io_running io_more raid 2
    host_step member_failed raid_fail
    check io_while_degraded io_more raid 4
    host_step member_added raid_add
    check io_during_rebuild io_more raid 2
    host_step still_rebuilding raid_rebuilding
    host_step rebuilt raid_synced 200
    check io_after_rebuild io_more raid 2
    io_stop raid
    check no_io_error io_clean raid
    check no_kernel_error ev '! dmesg | grep -i "error\|sense key\|reset"'
    check data_holds io_slots_hold raid "$RAID" 8 8
    host_step members_agree members_agree
    check logout logout
}
GUEST
}
