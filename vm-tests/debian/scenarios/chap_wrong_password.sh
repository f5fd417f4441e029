# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# chap_wrong_password: a wrong CHAP secret, an unknown CHAP user and no CHAP at all are
# refused with an authentication failure (iscsiadm exit 24); the right secret then works.
SCENARIO_TARGETS="rustiscsi tgt"
SCENARIO_TIMEOUT=120
CHAP_USER=client1
CHAP_PASS=chap-secret-0123456789

rustiscsi_config() {
    toml_acl_target \
        "chap = { user = \"$CHAP_USER\", password_file = \"$(secret_file chap "$CHAP_PASS")\" }"
}

tgt_setup() { tgt_acl_target "$CHAP_USER" "$CHAP_PASS"; }

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
