# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# live_portal: a portal is added to the running target with the CLI (no restart); before,
# nothing answers there; after, the kernel initiator logs in through it and does I/O, and
# `status` shows the listener accepting. Removing it logs that session out and closes the
# listener, while the first portal keeps serving.
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=240
LUN_SIZE=$((64 << 20))

rustiscsi_config() {
    toml_acl_target
}

cli() { "$(dirname "$RUSTISCSID")/rustiscsi" --socket "$WORK/control.sock" "$@"; }
portals() { cli shell "/iscsi/$IQN/tpg1/portals" "$@"; }

host_event_add_portal() {
    portals create 127.0.0.1 "$PORT2" &&
        cli --json status | tee "$WORK/status.json" | tr -d ' \n' |
        grep -q "\"portal\":\"127.0.0.1:$PORT2\",\"bound\":\"127.0.0.1:$PORT2\",\"dual_stack\":false,\"accepting\":true"
}
host_event_remove_portal() {
    portals delete 127.0.0.1 "$PORT2" &&
        ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT2") 2>/dev/null
}
# The target holds no session on the removed portal any more (it asked the initiator to
# log out and closed it; the initiator may keep trying to reconnect).
host_event_session_gone() {
    local _
    for _ in $(seq 50); do
        cli --json sessions | tr -d ' \n' | grep -q "\"local\":\"127.0.0.1:$PORT2\"" || return 0
        sleep 0.2
    done
    return 1
}

guest_part() {
    cat <<'GUEST'
login2() { iscsiadm -m node -T "$IQN" -p "$PORTAL2" -l; }
# leave2: drop the session record of PORTAL2 (the initiator retries a connection the
# target closed); nothing of it may be left.
leave2() {
    iscsiadm -m node -T "$IQN" -p "$PORTAL2" -u >/dev/null 2>&1
    ! iscsiadm -m session 2>/dev/null | grep -q "${PORTAL2%:*}"
}
guest_main() {
    need iscsid_start iscsi_start
    iscsiadm -m node -o new -T "$IQN" -p "$PORTAL2" >/dev/null
    iscsiadm -m node -T "$IQN" -p "$PORTAL2" -o update -n node.session.initial_login_retry_max -v 0
    expect_fail login_before_the_portal_exists login2
    host_event add_portal
    need login_through_the_new_portal login2
    check one_session ev '[ "$(iscsiadm -m session | grep -c "${PORTAL2%:*}")" = 1 ]'
    need_disk disk_appears 0
    check raw_io raw_io "$DEV" $((64 << 20))
    host_event remove_portal
    host_event session_gone
    check leave_removed_portal leave2
    need node_record node_new
    check old_portal_still_serves login
    check logout logout
}
GUEST
}
