# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# digests: the basic suite with HeaderDigest and DataDigest CRC32C negotiated.
SCENARIO_TARGETS="rustiscsi tgt"
SCENARIO_TIMEOUT=150

rustiscsi_config() {
    toml_acl_target
    cat <<TOML

[iscsi]
header_digest = ["CRC32C", "None"]
data_digest = ["CRC32C", "None"]
TOML
}

tgt_setup() {
    tgt_basic_target
    TGTADM --mode target --op update --tid 1 --name HeaderDigest --value CRC32C,None
    TGTADM --mode target --op update --tid 1 --name DataDigest --value CRC32C,None
}

guest_part() {
    cat <<'GUEST'
node_options() {
    node_set 'node.conn[0].iscsi.HeaderDigest' CRC32C &&
        node_set 'node.conn[0].iscsi.DataDigest' CRC32C
}
after_login() {
    check digests_negotiated session_shows 'HeaderDigest: CRC32C' 'DataDigest: CRC32C'
}
guest_main() { basic_suite; }
GUEST
}
