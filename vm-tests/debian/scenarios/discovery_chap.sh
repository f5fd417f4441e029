# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# discovery_chap: SendTargets needs CHAP ([discovery] chap); without it or with a wrong
# secret discovery fails, with it the IQN is listed; the normal session needs no CHAP.
SCENARIO_TARGETS="rustiscsi tgt"
SCENARIO_TIMEOUT=120
DISC_USER=discover1
DISC_PASS=discovery-secret-0123

rustiscsi_config() {
    toml_acl_target
    cat <<TOML

[discovery]
chap = { user = "$DISC_USER", password_file = "$(secret_file discovery "$DISC_PASS")" }
TOML
}

tgt_setup() {
    tgt_basic_target
    TGTADM --mode account --op new --user "$DISC_USER" --password "$DISC_PASS"
    TGTADM --mode account --op bind --user "$DISC_USER"
}

guest_env() { printf "DISC_USER='%s'\nDISC_PASS='%s'\n" "$DISC_USER" "$DISC_PASS"; }

guest_part() {
    cat <<'GUEST'
guest_main() {
    need iscsid_start iscsi_start
    expect_fail discovery_without_chap_refused discover_lists
    check set_wrong_discovery_chap discovery_chap_set "$DISC_USER" wrong-discovery-secret
    expect_fail discovery_wrong_secret_refused discoverydb_lists
    check set_discovery_chap discovery_chap_set "$DISC_USER" "$DISC_PASS"
    need discovery_with_chap discoverydb_lists
    quick_suite
}
GUEST
}
