# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# vanished_link (issue 8, defect 4): the initiator's network vanishes in the middle of a
# long write, without a RST (a pulled cable), while parallel readers keep up to 64 MiB of
# Data-In outstanding (more than the two TCP socket buffers hold, so the target's sends
# stall as well: a writer blocked on a dead peer must not pin the session). rustiscsid runs in a network namespace and
# listens on one end of a veth pair; socat's leg to it crosses the veth, whose host end
# the host takes down. The target must free the session within the bound its timeouts
# imply (below); when the link returns the initiator logs in again, the interrupted write
# completes and everything written reads back.
#
#   guest --(slirp)--> socat (host netns) --veth vh<PORT> == vn<PORT>--> rustiscsid (netns)
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=400

# The daemon's timeouts for this scenario. Whatever the connection was doing when the link
# went (idle between PDUs: NOP-In after 2 s, unanswered 3 s later; inside a PDU: the PDU
# deadline; sending: the send timeout), it is found dead within 5 s; TCP keepalive is the
# backstop. VANISH_BOUND adds 10 s of slack for a loaded host under TCG.
TOML_DAEMON_EXTRA='nop_interval_secs = 2
nop_timeout_secs = 3
pdu_timeout_secs = 5
send_timeout_secs = 5
tcp_keepalive_secs = 5'
VANISH_BOUND=15
RUSTISCSI=${RUSTISCSI:-$VMT_ROOT/target/release/rustiscsi}

scenario_setup() {
    ensure_packages iproute2
    local n=$((PORT % 250 + 1))
    VANISH_NS="vmt-vanish-$PORT"
    VANISH_HOST_IF="vh$PORT"
    VANISH_NS_IF="vn$PORT"
    ip netns add "$VANISH_NS"
    ip link add "$VANISH_HOST_IF" type veth peer name "$VANISH_NS_IF" netns "$VANISH_NS"
    ip addr add "10.213.$n.1/30" dev "$VANISH_HOST_IF"
    ip link set "$VANISH_HOST_IF" up
    ip -n "$VANISH_NS" addr add "10.213.$n.2/30" dev "$VANISH_NS_IF"
    ip -n "$VANISH_NS" link set lo up
    ip -n "$VANISH_NS" link set "$VANISH_NS_IF" up
    TARGET_HOST="10.213.$n.2"
    TARGET_NETNS=$VANISH_NS
    echo "netns $VANISH_NS: target at $TARGET_HOST:$PORT, host end $VANISH_HOST_IF"
}

scenario_cleanup() {
    [[ -n ${VANISH_NS:-} ]] && ip netns del "$VANISH_NS" 2>/dev/null
    return 0
}

rustiscsi_config() { toml_acl_target; }

# Sessions of the test initiator the daemon still lists ("error" if it cannot be asked).
initiator_sessions() {
    local out
    out=$("$RUSTISCSI" --socket "$WORK/control.sock" --json sessions) || { echo error; return; }
    grep -c "\"$INITIATOR\"" <<<"$out" || true
}

host_event_vanish() {
    echo "sessions before: $(initiator_sessions)"
    ip link set "$VANISH_HOST_IF" down
    local t0=$SECONDS freed=""
    while ((SECONDS - t0 <= VANISH_BOUND + 5)); do
        if [[ $(initiator_sessions) == 0 ]]; then freed=$((SECONDS - t0)); break; fi
        sleep 0.5
    done
    echo "link down for $((SECONDS - t0)) s; session freed after: ${freed:-never} (bound ${VANISH_BOUND} s)"
    "$RUSTISCSI" --socket "$WORK/control.sock" sessions || true
    ip link set "$VANISH_HOST_IF" up
    echo "link up again"
    [[ -n $freed ]] && ((freed <= VANISH_BOUND))
}

host_event_relogin() { # the initiator came back: a second login of the normal session
    local n
    n=$(grep -c "login complete.*initiator=$INITIATOR target=\"$IQN\"" "$WORK/target.log" || true)
    echo "normal-session logins: $n"
    grep "login complete\|connection closed\|session ended" "$WORK/target.log" || true
    ((n >= 2))
}

guest_part() {
    cat <<'GUEST'
node_options() {
    # Find the dead link quickly, keep queued I/O through the outage.
    node_set node.session.timeo.replacement_timeout 120 &&
        node_set 'node.conn[0].timeo.noop_out_interval' 2 &&
        node_set 'node.conn[0].timeo.noop_out_timeout' 3
}
long_write() { # DEV: 4 x 32 MiB O_DIRECT at 0, 32, 64, 96 MiB in the background
    dd if=/dev/urandom of=/tmp/chunk bs=1M count=32 2>/dev/null
    rm -f /tmp/long.done /tmp/long.log
    (for i in 0 1 2 3; do
        dd if=/tmp/chunk of="$1" bs=256K seek=$((i * 128)) oflag=direct conv=notrunc \
            >> /tmp/long.log 2>&1 || echo "write $i failed" >> /tmp/long.log
        echo "chunk $i written" >> /tmp/long.log
     done; touch /tmp/long.done) &
}
readers() { # DEV: 8 parallel O_DIRECT readers, 32 MiB each in 8 MiB requests
    rm -f /tmp/readers.log
    for r in 0 1 2 3 4 5 6 7; do
        (dd if="$1" of=/dev/null bs=8M count=4 skip=$((16 + (r % 4) * 4)) iflag=direct 2>/dev/null ||
            echo "reader $r failed" >> /tmp/readers.log
         echo "reader $r finished" >> /tmp/readers.log) &
    done
}
long_write_done() {
    while [ ! -e /tmp/long.done ]; do sleep 0.5; done
    cat /tmp/long.log
    ! grep -q failed /tmp/long.log && [ "$(grep -c '^128+0 records out' /tmp/long.log)" = 4 ]
}
readers_done() {
    while [ "$(grep -c finished /tmp/readers.log 2>/dev/null)" != 8 ]; do sleep 0.5; done
    cat /tmp/readers.log
    ! grep -q failed /tmp/readers.log
}
long_write_reads_back() {
    for i in 0 1 2 3; do
        if ! dd if="$1" of=/tmp/back bs=256K skip=$((i * 128)) count=128 iflag=direct 2>/dev/null ||
            ! cmp /tmp/chunk /tmp/back; then
            echo "chunk $i differs"
            return 1
        fi
    done
}
logged_in() { iscsiadm -m session -P 1 | grep -q 'iSCSI Session State: LOGGED_IN'; }
guest_main() {
    need iscsid_start iscsi_start
    need node_record node_new
    need node_options node_options
    need login login
    need_disk disk_appears
    long_write "$DEV"
    # Mid-write: the first chunk is written, the second under way; the readers start.
    while ! grep -q 'chunk 0' /tmp/long.log 2>/dev/null; do sleep 0.2; done
    readers "$DEV"
    sleep 1
    host_event vanish
    STEP_TIMEOUT=200 check write_survives_the_outage long_write_done
    check reads_survive_the_outage readers_done
    check logged_in_again logged_in
    host_event relogin
    check data_written_through_the_outage long_write_reads_back "$DEV"
    check io_after_reconnect roundtrip "$DEV" 8 128
    check logout logout
}
GUEST
}
