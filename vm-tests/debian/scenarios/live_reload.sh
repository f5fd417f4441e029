# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# live_reload: with a session open and reading LUN 0, the config gains LUN 1 and the daemon
# gets SIGHUP; after a rescan LUN 1 appears in the same session with its size, takes I/O, and
# the reads of LUN 0 never failed. (tgt: its LUN 0 is the controller, so disk 1 + new LUN 2,
# added with tgtadm instead of a reload.)
SCENARIO_TARGETS="rustiscsi tgt"
SCENARIO_TIMEOUT=120
LUN_SIZE=$((64 << 20))
RELOADED=0

rustiscsi_config() {
    toml_daemon
    toml_fileio disk0
    ((RELOADED)) && toml_fileio disk1 $((32 << 20))
    cat <<TOML

[targets."$IQN"]
TOML
    if ((RELOADED)); then
        echo 'luns = [{ lun = 0, backstore = "disk0" }, { lun = 1, backstore = "disk1" }]'
    else
        echo 'luns = [{ lun = 0, backstore = "disk0" }]'
    fi
    cat <<TOML

[targets."$IQN".acls."$INITIATOR"]
TOML
}

tgt_setup() { tgt_basic_target; }

guest_env() {
    local d=${DISK_LUN:-0}
    if [[ $TARGET == tgt ]]; then
        printf "NEW_LUN=%s\nLUNS_BEFORE='0 %s'\nLUNS_AFTER='0 %s %s'\n" $((d + 1)) "$d" "$d" $((d + 1))
    else
        printf "NEW_LUN=%s\nLUNS_BEFORE='%s'\nLUNS_AFTER='%s %s'\n" $((d + 1)) "$d" "$d" $((d + 1))
    fi
}

host_event_reload() {
    if [[ $TARGET == tgt ]]; then
        truncate -s $((32 << 20)) "$WORK/disk1.img"
        TGTADM --mode logicalunit --op new --tid 1 --lun 2 -b "$WORK/disk1.img"
        return
    fi
    RELOADED=1
    rustiscsi_config > "$WORK/rustiscsid.toml.new"
    mv "$WORK/rustiscsid.toml.new" "$WORK/rustiscsid.toml"
    target_reload
}

guest_part() {
    cat <<'GUEST'
reader() { # DEV: read LUN 0 in a loop until /tmp/stop exists; count failures
    : > /tmp/reader.fail
    while [ ! -e /tmp/stop ]; do
        dd if="$1" of=/dev/null bs=1M count=16 iflag=direct 2>/dev/null || echo x >> /tmp/reader.fail
    done
}
wait_lun1() {
    i=0
    while [ $i -lt 30 ]; do
        rescan >/dev/null 2>&1
        disk_of "$NEW_LUN" >/dev/null && return 0
        sleep 1; i=$((i + 1))
    done
    return 1
}
size_is() { [ "$(blockdev --getsize64 "$1")" = "$2" ]; }
guest_main() {
    need iscsid_start iscsi_start
    need node_record node_new
    need login login
    need_disk disk_appears
    check luns_before luns_are "$LUNS_BEFORE"
    SID=$(session_id)
    reader "$DEV" &
    READER=$!
    host_event reload
    check lun1_appears wait_lun1
    need_disk lun1_disk "$NEW_LUN"
    check lun1_size size_is "$DEV" $((32 << 20))
    check lun1_raw_io raw_io "$DEV" $((32 << 20))
    touch /tmp/stop; wait "$READER"
    check lun0_reads_never_failed ev '[ ! -s /tmp/reader.fail ]'
    check same_session ev "[ \"\$(session_id)\" = '$SID' ]"
    check luns_after luns_are "$LUNS_AFTER"
    check report_luns_after report_luns_are "$DEV" "$LUNS_AFTER"
    check logout logout
}
GUEST
}
