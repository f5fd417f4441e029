# shellcheck shell=bash
# shellcheck disable=SC2034,SC2016  # SCENARIO_* are read by run.sh; tg takes code for the target guest
# md_lvm_restart (guest-target mode, guest-target.sh): rustiscsid runs in its own guest and
# serves an md RAID1 array by its udev name /dev/disk/by-id/md-name-nas:iscsi (LUN 0) and an
# LVM volume /dev/vg0/vm1 (LUN 1). The kernel initiator sees both sizes and writes random
# data to both; the target guest finds it on the volume and on the array, both members equal;
# the daemon is restarted (SIGTERM, start) and, in the same session, all of it reads back and
# new writes land.
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=480
# shellcheck source-path=SCRIPTDIR/.. source=guest-target.sh
. "$VMT_DIR/guest-target.sh"

data_on_storage() {
    tg 'has_pattern "$RAID_LINK" /scenario/pat0.bin 8 && has_pattern "$LV_PATH" /scenario/pat1.bin 16 &&
        raid_members_agree'
}
host_event_data_on_storage() { gt_acked data_on_storage data_on_storage; }

guest_part() {
    gt_guest_lib
    cat <<'GUEST'
guest_main() {
    gt_login
    check raid_size readcap_is "$RAID" "$RAID_BYTES"
    check vol_size readcap_is "$VOL" "$LV_BYTES"
    check raid_vpd83 vpd83_has_naa "$RAID"
    check raid_write put "$RAID" /scenario/pat0.bin 8
    check vol_write put "$VOL" /scenario/pat1.bin 16
    check raid_read got "$RAID" /scenario/pat0.bin 8
    check vol_read got "$VOL" /scenario/pat1.bin 16
    host_step data_on_the_devices data_on_storage
    SID=$(session_id)
    host_step daemon_restarted restart 150
    check same_session ev "[ \"\$(session_id)\" = '$SID' ]"
    check raid_after_restart got "$RAID" /scenario/pat0.bin 8
    check vol_after_restart got "$VOL" /scenario/pat1.bin 16
    check raid_write_after put "$RAID" /scenario/pat1.bin 24
    check raid_read_after got "$RAID" /scenario/pat1.bin 24
    check vol_write_after put "$VOL" /scenario/pat0.bin 40
    check vol_read_after got "$VOL" /scenario/pat0.bin 40
    check logout logout
}
GUEST
}
