# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# acl_refused: an initiator without an ACL on the target is refused at login (iscsiadm exit
# 19: "not authorised" is a fatal login error, not an authentication failure); the initiator
# that has the ACL logs in.
SCENARIO_TARGETS="rustiscsi tgt"
SCENARIO_TIMEOUT=120
OTHER_INITIATOR="iqn.2005-03.org.open-iscsi:stranger"

rustiscsi_config() {
    toml_daemon
    toml_fileio disk0
    cat <<TOML

[targets."$IQN"]
luns = [{ lun = 0, backstore = "disk0" }]

[targets."$IQN".acls."$INITIATOR"]
TOML
}

tgt_setup() {
    make_disk "$WORK/disk0.img"
    TGTADM --mode target --op new --tid 1 -T "$IQN"
    TGTADM --mode logicalunit --op new --tid 1 --lun 1 -b "$WORK/disk0.img"
    TGTADM --mode target --op bind --tid 1 -Q "$INITIATOR"
}

guest_env() { printf "OTHER_INITIATOR='%s'\n" "$OTHER_INITIATOR"; }

guest_part() {
    cat <<'GUEST'
guest_main() {
    need iscsid_start_stranger iscsi_start "$OTHER_INITIATOR"
    need node_record node_new
    expect_rc stranger_refused 19 login
    check no_session ev '! iscsiadm -m session >/dev/null 2>&1'
    check no_disk ev '[ -z "$(luns_seen)" ]'
    need iscsid_start iscsi_start "$INITIATOR"
    need login login
    need_disk disk_appears
    check readcap readcap_is "$DEV" "$LUN_SIZE"
    check logout logout
}
GUEST
}
