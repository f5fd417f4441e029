# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# mutual_chap: the initiator proves itself and the target proves itself back; a wrong
# expected target secret makes the initiator drop the login. The initiator offers the SHA
# family first (open-iscsi's chap_algs); rustiscsid must pick the strongest, SHA3-256
# (tgt knows MD5 only and fails such an offer, so it gets open-iscsi's default, MD5).
SCENARIO_TARGETS="rustiscsi tgt"
SCENARIO_TIMEOUT=120
CHAP_USER=client1
CHAP_PASS=chap-secret-0123456789
MUTUAL_USER=target1
MUTUAL_PASS=mutual-secret-9876543210

rustiscsi_config() {
    toml_acl_target \
        "chap = { user = \"$CHAP_USER\", password_file = \"$(secret_file chap "$CHAP_PASS")\" }" \
        "mutual_chap = { user = \"$MUTUAL_USER\", password_file = \"$(secret_file mutual "$MUTUAL_PASS")\" }"
}

tgt_setup() { tgt_acl_target "$CHAP_USER" "$CHAP_PASS" "$MUTUAL_USER" "$MUTUAL_PASS"; }

guest_env() {
    printf "CHAP_USER='%s'\nCHAP_PASS='%s'\nMUTUAL_USER='%s'\nMUTUAL_PASS='%s'\n" \
        "$CHAP_USER" "$CHAP_PASS" "$MUTUAL_USER" "$MUTUAL_PASS"
}

# The daemon logged the login with the algorithm it chose.
host_event_chap_algorithm() {
    [[ $TARGET == tgt ]] && return 0
    grep "login complete" "$WORK/target.log" | grep -Eq 'chap="?SHA3-256'
}

guest_part() {
    cat <<'GUEST'
node_options() {
    node_chap "$CHAP_USER" "$CHAP_PASS" "$MUTUAL_USER" "$MUTUAL_PASS" || return 1
    # tgt 1.0.85 fails a login whose CHAP_A offer does not start with MD5.
    [ "$TARGET" = tgt ] || node_set node.session.auth.chap_algs "SHA3-256,SHA256,SHA1,MD5"
}
guest_main() {
    need iscsid_start iscsi_start
    need discovery discover_lists
    quick_suite
    host_event chap_algorithm
    # The target answers with its secret; the initiator must refuse a target that does not
    # know the secret it expects.
    check wrong_target_secret node_set node.session.auth.password_in wrong-mutual-secret-000
    expect_fail login_bad_target_refused login
    check no_session ev '! iscsiadm -m session >/dev/null 2>&1'
}
GUEST
}
