# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# chap: one-way CHAP on the initiator's ACL; login with the right secret works and I/O runs.
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
node_options() { node_chap "$CHAP_USER" "$CHAP_PASS"; }
after_login() { check session_uses_chap session_shows "username: $CHAP_USER"; }
guest_main() {
    need iscsid_start iscsi_start
    need discovery discover_lists
    quick_suite
}
GUEST
}
