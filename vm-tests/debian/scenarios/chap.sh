# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# chap: one-way CHAP on the initiator's ACL; login with the right secret works and I/O runs.
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
node_options() { node_chap "$CHAP_USER" "$CHAP_PASS"; }
after_login() { check session_uses_chap session_shows "username: $CHAP_USER"; }
guest_main() {
    need iscsid_start iscsi_start
    need discovery discover_lists
    quick_suite
}
GUEST
}
