# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# soak_digests (issue 8, defect 1): open-iscsi with HeaderDigest and DataDigest CRC32C
# and a NOP-Out every 2 s stays logged in through 120 s of idle time (60 pings, each an
# empty NOP-Out with digests), then does verified I/O. No reconnect: same session id,
# nothing in dmesg or iscsid's log about connection errors or recovery, and the target
# saw exactly one login.
SCENARIO_TARGETS="rustiscsi tgt"
SOAK_SECS=${SOAK_SECS:-120}

# The target side is the digests scenario's (CRC32C offered by rustiscsid and tgt).
# shellcheck source-path=SCRIPTDIR source=digests.sh
. "$SCEN_DIR/digests.sh"
SCENARIO_TIMEOUT=300

guest_env() { echo "SOAK_SECS='$SOAK_SECS'"; }

# One login of the normal session in the target's log (rustiscsid); tgt logs none.
host_event_one_login() {
    [[ $TARGET == rustiscsi ]] || return 0
    local n
    n=$(grep -c "login complete.*initiator=$INITIATOR target=\"$IQN\"" "$WORK/target.log" || true)
    echo "normal-session logins in the target log: $n"
    grep "login complete\|connection closed\|session ended" "$WORK/target.log" || true
    [[ $n == 1 ]]
}

guest_part() {
    cat <<'GUEST'
node_options() {
    node_set 'node.conn[0].iscsi.HeaderDigest' CRC32C &&
        node_set 'node.conn[0].iscsi.DataDigest' CRC32C &&
        node_set 'node.conn[0].timeo.noop_out_interval' 2 &&
        node_set 'node.conn[0].timeo.noop_out_timeout' 5
}
# Messages the initiator prints when a connection fails or is recovered.
conn_trouble() {
    dmesg | grep -Ei 'conn error|ping timeout|reconnect|recovery' && return 0
    grep -Ei 'connection[0-9:]* error|reported iSCSI connection|recovery|reopen|reconnect' \
        /tmp/iscsid.log && return 0
    return 1
}
no_conn_trouble() { ! conn_trouble; }
guest_main() {
    need iscsid_start iscsi_start
    need node_record node_new
    need node_options node_options
    need login login
    need_disk disk_appears
    check digests_negotiated session_shows 'HeaderDigest: CRC32C' 'DataDigest: CRC32C'
    SID=$(session_id)
    say "idle for $SOAK_SECS s with a NOP-Out every 2 s"
    STEP_TIMEOUT=$((SOAK_SECS + 30)) check idle sleep "$SOAK_SECS"
    check same_session ev "[ \"\$(session_id)\" = '$SID' ]"
    check no_connection_errors no_conn_trouble
    check io_after_idle roundtrip "$DEV" 16 16
    check still_same_session ev "[ \"\$(session_id)\" = '$SID' ]"
    host_event one_login
    check logout logout
}
GUEST
}
