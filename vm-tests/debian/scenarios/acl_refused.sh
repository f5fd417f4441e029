# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# acl_refused: an initiator without an ACL on the target is refused at login; the initiator
# that has the ACL logs in. rustiscsid answers with the precise RFC 7143 status 0202
# (authorization failure), which iscsiadm reports as exit 24 (it maps 0201 and 0202 alike),
# so the host also checks the status in the daemon's log. tgt answers 0203 (target not
# found), which iscsiadm reports as exit 19.
SCENARIO_TARGETS="rustiscsi tgt"
SCENARIO_TIMEOUT=120
OTHER_INITIATOR="iqn.2005-03.org.open-iscsi:stranger"

rustiscsi_config() {
    toml_acl_target
}

tgt_setup() { tgt_acl_target; }

guest_env() { printf "OTHER_INITIATOR='%s'\nTARGET='%s'\n" "$OTHER_INITIATOR" "$TARGET"; }

# The daemon logged the refusal once, with the initiator and the 0202 status.
host_event_refusal_status() {
    [[ $TARGET == tgt ]] && return 0
    local n
    n=$(grep -c "login refused: initiator not allowed.*$OTHER_INITIATOR\|$OTHER_INITIATOR.*login refused: initiator not allowed" "$WORK/target.log" || true)
    grep "login refused" "$WORK/target.log" | grep -q "status=0202" && [[ $n -ge 1 ]]
}

guest_part() {
    cat <<'GUEST'
guest_main() {
    need iscsid_start_stranger iscsi_start "$OTHER_INITIATOR"
    need node_record node_new
    if [ "$TARGET" = tgt ]; then expect_rc stranger_refused 19 login; else expect_rc stranger_refused 24 login; fi
    host_event refusal_status
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
