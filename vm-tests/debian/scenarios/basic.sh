# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# basic: SendTargets discovery, login, READ CAPACITY, INQUIRY + VPD 0x83 (NAA), mkfs.ext4,
# files with checksums verified across logout/login, O_DIRECT raw I/O at three offsets.
SCENARIO_TARGETS="rustiscsi tgt"
SCENARIO_TIMEOUT=150

rustiscsi_config() {
    toml_acl_target
}

tgt_setup() { tgt_basic_target; }

guest_part() {
    cat <<'GUEST'
guest_main() { basic_suite; }
GUEST
}
