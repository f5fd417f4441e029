# shellcheck shell=bash
# shellcheck disable=SC2034,SC2153  # SCENARIO_* are read by run.sh; INITIATOR is set by it
# lun_masking: the target has LUNs 0, 1, 2 (64, 96, 128 MiB). Initiator A maps LUN 0 -> 0 and
# LUN 1 -> target LUN 2; initiator B maps only LUN 0 -> target LUN 1. Each sees exactly its
# LUNs (sysfs and REPORT LUNS), with the sizes of the target LUNs behind them.
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=120
LUN_SIZE=$((64 << 20))
INITIATOR_B="iqn.2005-03.org.open-iscsi:vmtest-b"

rustiscsi_config() {
    toml_daemon
    toml_fileio disk0 $((64 << 20))
    toml_fileio disk1 $((96 << 20))
    toml_fileio disk2 $((128 << 20))
    cat <<TOML

[targets."$IQN"]
luns = [
    { lun = 0, backstore = "disk0" },
    { lun = 1, backstore = "disk1" },
    { lun = 2, backstore = "disk2" },
]

[targets."$IQN".acls."$INITIATOR"]
mapped_luns = [{ lun = 0 }, { lun = 1, target_lun = 2 }]

[targets."$IQN".acls."$INITIATOR_B"]
mapped_luns = [{ lun = 0, target_lun = 1 }]
TOML
}

guest_env() { printf "INITIATOR_B='%s'\n" "$INITIATOR_B"; }

guest_part() {
    cat <<'GUEST'
size_is() { [ "$(blockdev --getsize64 "$1")" = "$2" ]; }
guest_main() {
    need iscsid_start iscsi_start "$INITIATOR"
    need node_record node_new
    need login_a login
    need_disk a_lun0 0
    check a_luns_visible luns_are "0 1"
    check a_report_luns report_luns_are "$DEV" "0 1"
    check a_lun0_size size_is "$DEV" $((64 << 20))
    need_disk a_lun1 1
    check a_lun1_is_target_lun2 size_is "$DEV" $((128 << 20))
    check a_lun1_raw_io raw_io "$DEV" $((128 << 20))
    check a_logout logout
    need iscsid_start_b iscsi_start "$INITIATOR_B"
    need login_b login
    need_disk b_lun0 0
    check b_luns_visible luns_are "0"
    check b_report_luns report_luns_are "$DEV" "0"
    check b_lun0_is_target_lun1 size_is "$DEV" $((96 << 20))
    check b_logout logout
}
GUEST
}
