# shellcheck shell=bash
# shellcheck disable=SC2034,SC2153  # SCENARIO_* are read by run.sh; INITIATOR is set by it
# pr_cluster: a cluster disk as Windows Failover Cluster validation exercises it, from two
# nodes that reach one backstore through two targets (they share its logical unit): node 1
# registers and reserves Write Exclusive - Registrants Only, node 2 registers, sees node 1's
# reservation, cannot reserve, and preempts node 1, whose writes are then refused until it
# registers again; node 2 hands the reservation to node 1 with REGISTER AND MOVE (across
# target ports); release and clear. Then SPEC_I_PT with ALL_TG_PT registers node 2 from
# node 1. The disk carries a pinned LIO identity (serial, 16-byte NAA, vendor, product),
# which both nodes see in INQUIRY, VPD 0x80 and 0x83 and the kernel's wwid.
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=240
LUN_SIZE=$((64 << 20))
INITIATOR_B="iqn.2005-03.org.open-iscsi:vmtest-b"
SERIAL="a1b2c3d4-e5f6-4718-9293-a4b5c6d7e8f9"
NAA_HEX="6001405a1b2c3d4e5f647189293a4b5c"

rustiscsi_config() {
    toml_daemon
    toml_fileio disk0
    cat <<TOML
serial = "$SERIAL"
wwn = "naa.$NAA_HEX"
vendor = "LIO-ORG"
product = "IBLOCK"

[targets."$IQN"]
luns = [{ lun = 0, backstore = "disk0" }]

[targets."$IQN".acls."$INITIATOR"]

[targets."$IQN-b"]
luns = [{ lun = 0, backstore = "disk0" }]

[targets."$IQN-b".acls."$INITIATOR_B"]
TOML
}

guest_env() {
    printf "INITIATOR_B='%s'\nIQN2='%s'\nSERIAL='%s'\nNAA_HEX='%s'\n" \
        "$INITIATOR_B" "$IQN-b" "$SERIAL" "$NAA_HEX"
}

guest_part() {
    cat <<'GUEST'
K1=0x11c1 K2=0x22c2
WERO="Write Exclusive, registrants only"
identity_shown() { # DEV RTPI: the pinned identity, through that target port
    sg_inq "$1" > /tmp/inq.out 2>&1 && output_has /tmp/inq.out "Vendor identification: LIO-ORG" \
        "Product identification: IBLOCK" || return 1
    sg_vpd -p 0x80 "$1" > /tmp/vpd80.out 2>&1 && output_has /tmp/vpd80.out "$SERIAL" || return 1
    sg_vpd -p 0x83 "$1" > /tmp/vpd83.out 2>&1 && output_has /tmp/vpd83.out "0x$NAA_HEX" \
        "designator type: NAA" "LIO-ORG" "IBLOCK:$SERIAL" "Relative target port: 0x$2" || return 1
    _w=$(cat "/sys/block/${1##*/}/device/wwid")
    echo "wwid: $_w"
    [ "$_w" = "naa.$NAA_HEX" ]
}
guest_main() {
    need iscsid_start iscsi_start "$INITIATOR"
    need iface_a iface_new ifa "$INITIATOR"
    need iface_b iface_new ifb "$INITIATOR_B"
    need node_a node_new_if ifa "$IQN"
    need node_b node_new_if ifb "$IQN2"
    need login_a login "$IQN"
    need login_b login "$IQN2"
    need_disk_for disk_a DEV_A "$INITIATOR" "$IQN"
    need_disk_for disk_b DEV_B "$INITIATOR_B" "$IQN2"
    check identity_node1 identity_shown "$DEV_A" 1
    check identity_node2 identity_shown "$DEV_B" 2
    # Validate SCSI-3 Persistent Reservation.
    check node1_register prout -I -S "$K1" "$DEV_A"
    check node1_keys keys_are "$DEV_A" "$K1"
    check node1_reserve prout -R -K "$K1" -T 5 "$DEV_A"
    check node2_register prout -I -S "$K2" "$DEV_B"
    check node2_keys keys_are "$DEV_B" "$K1" "$K2"
    check node2_sees_reservation holder_is "$DEV_B" "$K1" "$WERO"
    expect_rc node2_reserve_conflicts 24 prout -R -K "$K2" -T 5 "$DEV_B"
    check registrants_write ev "write_mib '$DEV_A' 1 p1 && write_mib '$DEV_B' 2 p2 && mib_is '$DEV_A' 2 p2"
    # Arbitration: node 2 takes the disk.
    check node2_preempts prout -P -K "$K2" -S "$K1" -T 5 "$DEV_B"
    check node1_removed keys_are "$DEV_A" "$K2"
    check node2_holds holder_is "$DEV_A" "$K2" "$WERO"
    check node1_write_refused write_refused "$DEV_A" 3 p3
    check node1_write_not_landed mib_is "$DEV_B" 3 zero
    check node1_rejoins prout -I -S "$K1" "$DEV_A"
    check node1_writes_again ev "write_mib '$DEV_A' 3 p3 && mib_is '$DEV_B' 3 p3"
    # Failover back: node 2 moves the reservation to node 1's I_T nexus on target port 1.
    ISID_A=$(isid_seen "$INITIATOR" "$DEV_B")
    check isid_known ev "[ \"\$(printf %s '$ISID_A' | wc -c)\" = 12 ]"
    check node2_moves prout -M -K "$K2" -S "$K1" -Q 1 -X "$INITIATOR,i,0x$ISID_A" "$DEV_B"
    check node1_holds holder_is "$DEV_B" "$K1" "$WERO"
    check moved_full_status full_status_has "$DEV_B" "Key=$K1" "Key=$K2" "Relative port address: 0x1" \
        "Relative port address: 0x2" "port id: $INITIATOR,i,0x$ISID_A"
    check node1_releases prout -L -K "$K1" -T 5 "$DEV_A"
    check released holder_is "$DEV_B" none
    check node1_clears prout -C -K "$K1" "$DEV_A"
    check cleared keys_are "$DEV_B"
    # SPEC_I_PT + ALL_TG_PT: node 1 registers itself and every port of node 2 on both
    # target ports; node 2, through target port 2, is then registered.
    check spec_i_pt prout -G -Y -S "$K1" -X "$INITIATOR_B" "$DEV_A"
    check spec_i_pt_keys keys_are "$DEV_B" "$K1" "$K1" "$K1" "$K1"
    check spec_i_pt_status full_status_has "$DEV_B" "All target ports bit set" "iSCSI name: $INITIATOR_B"
    check node2_registered_by_node1 prout -R -K "$K1" -T 1 "$DEV_B"
    check node2_clears prout -C -K "$K1" "$DEV_B"
    check final_keys keys_are "$DEV_A"
    check logout_a logout "$IQN"
    check logout_b logout "$IQN2"
}
GUEST
}
