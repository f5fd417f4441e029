# shellcheck shell=bash
# shellcheck disable=SC2034,SC2153  # SCENARIO_* are read by run.sh; INITIATOR is set by it
# pr_fence_scsi: Pacemaker's fence_scsi sequence with sg_persist, from two initiators (two
# open-iscsi ifaces with their own initiator names): each node registers (REGISTER AND
# IGNORE EXISTING KEY), one reserves Write Exclusive - Registrants Only, the survivor
# fences the other with PREEMPT AND ABORT; the fenced node's writes are then refused with
# RESERVATION CONFLICT while its reads still work, and READ KEYS / READ RESERVATION / READ
# FULL STATUS tell the truth. All of it survives a reload that keeps the backstore's path
# (write_cache toggled: the backstore is reopened, the logical unit kept) and, once APTPL is
# set, a restart of the daemon. CLEAR unfences.
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=300
LUN_SIZE=$((64 << 20))
INITIATOR_B="iqn.2005-03.org.open-iscsi:vmtest-b"
WRITE_CACHE=false

rustiscsi_config() {
    toml_daemon
    toml_fileio disk0
    echo "write_cache = $WRITE_CACHE"
    cat <<TOML

[targets."$IQN"]
luns = [{ lun = 0, backstore = "disk0" }]

[targets."$IQN".acls."$INITIATOR"]

[targets."$IQN".acls."$INITIATOR_B"]
TOML
}

host_event_reload() {
    WRITE_CACHE=true
    rustiscsi_config > "$WORK/rustiscsid.toml.new"
    mv "$WORK/rustiscsid.toml.new" "$WORK/rustiscsid.toml"
    target_reload
}
host_event_restart() { target_restart; }
# The APTPL state is on disk before the restart: B registered and holding WE_RO, the
# fenced A gone.
host_event_aptpl_file() {
    local f
    f=$(ls "$WORK"/state/reservations/naa.*.json) && cat "$f" &&
        grep -q "$INITIATOR_B,i,0x" "$f" && ! grep -q "$INITIATOR,i,0x" "$f" && grep -q '"type": 5' "$f"
}
host_event_aptpl_file_gone() { ! ls "$WORK"/state/reservations/naa.*.json 2>/dev/null; }

guest_env() { printf "INITIATOR_B='%s'\n" "$INITIATOR_B"; }

guest_part() {
    cat <<'GUEST'
KA=0xa1a1 KB=0xb2b2
WERO="Write Exclusive, registrants only"
node_options() { # both records: reconnect quickly, keep queued commands across the restart
    node_set node.session.timeo.replacement_timeout 90 &&
        node_set 'node.conn[0].timeo.noop_out_interval' 2 &&
        node_set 'node.conn[0].timeo.noop_out_timeout' 2
}
write_back() { # DEV: after a rescan, the disk reports a write-back cache (the reload took)
    i=0
    while [ $i -lt 40 ]; do
        echo 1 > "/sys/block/${1##*/}/device/rescan"
        grep -q "write back" /sys/block/"${1##*/}"/device/scsi_disk/*/cache_type && return 0
        sleep 0.5; i=$((i + 1))
    done
    cat /sys/block/"${1##*/}"/device/scsi_disk/*/cache_type; return 1
}
fenced() { # DEV_A DEV_B: A's writes refused, A's reads work, B writes; A wrote nothing
    write_refused "$1" 5 pa5 && mib_is "$2" 5 zero && dd if="$1" of=/dev/null bs=1M count=4 iflag=direct 2>/dev/null &&
        write_mib "$2" 6 pb6 && mib_is "$1" 6 pb6
}
guest_main() {
    need iscsid_start iscsi_start "$INITIATOR"
    need iface_a iface_new ifa "$INITIATOR"
    need iface_b iface_new ifb "$INITIATOR_B"
    need node_a node_new_if ifa
    need node_b node_new_if ifb
    need node_options node_options
    need login_both login
    need_disk_for disk_a DEV_A "$INITIATOR"
    need_disk_for disk_b DEV_B "$INITIATOR_B"
    check two_nexuses ev "[ '$DEV_A' != '$DEV_B' ]"
    check capabilities caps_are "$DEV_A" 0
    # fence_scsi "on": every node registers its key, one reserves WE_RO.
    check register_a prout -I -S "$KA" "$DEV_A"
    check register_b prout -I -S "$KB" "$DEV_B"
    check keys_both keys_are "$DEV_A" "$KA" "$KB"
    check reserve_a prout -R -K "$KA" -T 5 "$DEV_A"
    check holder_a holder_is "$DEV_B" "$KA" "$WERO"
    expect_rc b_reserve_conflicts 24 prout -R -K "$KB" -T 5 "$DEV_B"
    check full_status full_status_has "$DEV_B" "Key=$KA" "Key=$KB" "<< Reservation holder >>" \
        "port id: $INITIATOR,i,0x" "port id: $INITIATOR_B,i,0x" "Relative port address: 0x1"
    check registrants_write ev "write_mib '$DEV_A' 1 pa1 && write_mib '$DEV_B' 2 pb2 && mib_is '$DEV_B' 1 pa1"
    # fence_scsi "off" for node A: B preempts A's key and aborts its tasks.
    check preempt_abort prout -A -K "$KB" -S "$KA" -T 5 "$DEV_B"
    check keys_only_b keys_are "$DEV_B" "$KB"
    check holder_b holder_is "$DEV_B" "$KB" "$WERO"
    check a_fenced fenced "$DEV_A" "$DEV_B"
    expect_rc a_cannot_reserve 24 prout -R -K "$KA" -T 5 "$DEV_A"
    # A reload that keeps the path keeps the unit and its reservation.
    host_event reload
    check reload_applied write_back "$DEV_B"
    check reload_keys keys_are "$DEV_B" "$KB"
    check reload_holder holder_is "$DEV_A" "$KB" "$WERO"
    check reload_a_fenced fenced "$DEV_A" "$DEV_B"
    # APTPL (fence_scsi's aptpl option): B registers again with APTPL set.
    check aptpl_on prout -I -Z -S "$KB" "$DEV_B"
    check capabilities_aptpl caps_are "$DEV_B" 1
    host_event aptpl_file
    host_event restart
    STEP_TIMEOUT=150 check restart_keys keys_are "$DEV_B" "$KB"
    check restart_holder holder_is "$DEV_B" "$KB" "$WERO"
    check restart_capabilities caps_are "$DEV_B" 1
    check restart_a_fenced fenced "$DEV_A" "$DEV_B"
    # Unfence: CLEAR, then A registers again (without APTPL: the file goes) and writes.
    check clear prout -C -K "$KB" "$DEV_B"
    check no_keys keys_are "$DEV_A"
    check holder_none holder_is "$DEV_A" none
    check register_a_again prout -I -S "$KA" "$DEV_A"
    host_event aptpl_file_gone
    check capabilities_off caps_are "$DEV_A" 0
    check a_writes_again ev "write_mib '$DEV_A' 5 pa5 && mib_is '$DEV_B' 5 pa5"
    check unregister_a prout -G -K "$KA" -S 0 "$DEV_A"
    check logout_both logout
}
GUEST
}
