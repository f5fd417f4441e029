# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# chap_wrong_password: a wrong CHAP secret, an unknown CHAP user and no CHAP at all are
# refused with an authentication failure (iscsiadm exit 24); the right secret then works.
SCENARIO_TARGETS="rustiscsi tgt"
SCENARIO_TIMEOUT=120
CHAP_USER=client1
CHAP_PASS=chap-secret-0123456789

rustiscsi_config() {
    toml_daemon
    toml_fileio disk0
    cat <<TOML

[targets."$IQN"]
luns = [{ lun = 0, backstore = "disk0" }]

[targets."$IQN".acls."$INITIATOR"]
chap = { user = "$CHAP_USER", password_file = "$(secret_file chap "$CHAP_PASS")" }
TOML
}

tgt_setup() {
    make_disk "$WORK/disk0.img"
    TGTADM --mode target --op new --tid 1 -T "$IQN"
    TGTADM --mode logicalunit --op new --tid 1 --lun 1 -b "$WORK/disk0.img"
    TGTADM --mode target --op bind --tid 1 -Q "$INITIATOR"
    TGTADM --mode account --op new --user "$CHAP_USER" --password "$CHAP_PASS"
    TGTADM --mode account --op bind --tid 1 --user "$CHAP_USER"
}

guest_env() { printf "CHAP_USER='%s'\nCHAP_PASS='%s'\n" "$CHAP_USER" "$CHAP_PASS"; }

guest_part() {
    cat <<'GUEST'
guest_main() {
    need iscsid_start iscsi_start
    need discovery discover_lists
    need node_record node_new
    check set_wrong_password node_chap "$CHAP_USER" wrong-secret-0123456789
    expect_rc wrong_password_refused 24 login
    check set_unknown_user node_chap nosuchuser "$CHAP_PASS"
    expect_rc unknown_user_refused 24 login
    check set_no_auth node_set node.session.auth.authmethod None
    expect_fail no_chap_refused login
    check no_session ev '! iscsiadm -m session >/dev/null 2>&1'
    check set_right_password node_chap "$CHAP_USER" "$CHAP_PASS"
    need login login
    need_disk disk_appears
    check raw_io raw_io "$DEV" "$LUN_SIZE"
    check logout logout
}
GUEST
}
