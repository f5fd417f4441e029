# shellcheck shell=sh
# Initiator-guest helpers of the guest-target scenarios (busybox ash). A scenario's guest_part
# prints this file (gt_guest_lib) before its own part; guest-lib.sh is loaded as always.
# Env from guest-target.sh: CHAP_USER CHAP_SECRET MUTUAL_USER MUTUAL_SECRET RAID_BYTES LV_BYTES.
# LUN 0 is the md RAID1 array, LUN 1 the LVM volume. /scenario/pat0.bin and pat1.bin (1 MiB
# of random data) are also in the target guest, which checks where they landed.

# gt_node_options: CHAP + mutual CHAP; reconnect quickly and keep queued I/O across an outage;
# a login attempt gives up after 5 s (while the target guest boots, the forwarded port accepts
# connections that nothing answers; a real login here takes well under a second).
gt_node_options() {
    node_chap "$CHAP_USER" "$CHAP_SECRET" "$MUTUAL_USER" "$MUTUAL_SECRET" &&
        node_set 'node.conn[0].timeo.login_timeout' 5 &&
        node_set node.session.timeo.replacement_timeout 90 &&
        node_set 'node.conn[0].timeo.noop_out_interval' 2 &&
        node_set 'node.conn[0].timeo.noop_out_timeout' 4
}
# login_retry [SECS]: logs in once the daemon listens (the target guest boots at the same
# time as this one); an authentication failure (24) ends it at once.
login_retry() {
    i=0
    while [ $i -lt "${1:-150}" ]; do
        login && return 0
        [ $? = 24 ] && return 24
        sleep 2; i=$((i + 2))
    done
    return 1
}
# gt_session: iscsid, node record, the target guest ready, login; sets VOL (LUN 1) and ARCHIVE
# (LUN 2, the mailbox).
# shellcheck disable=SC2034  # VOL and RAID are for the scenario's guest part
gt_session() {
    need iscsid_start iscsi_start
    need node_record node_new
    need node_options gt_node_options
    host_event target_ready
    STEP_TIMEOUT=200 need login login_retry 180
    need_disk vol_disk 1
    VOL=$DEV
    need_disk archive_disk 2
    ARCHIVE=$DEV
}
# gt_login: gt_session, and RAID set to the disk of LUN 0.
# shellcheck disable=SC2034
gt_login() {
    gt_session
    need_disk raid_disk 0
    RAID=$DEV
}

# ---------------------------------------------------------------- host events, acknowledged
# host_do NAME [SECS]: asks the host for event NAME and waits (up to SECS, default 120) until
# the host has acknowledged it in the mailbox (gt_acked in guest-target.sh); returns the
# event's exit status. Call it from guest_main itself (it counts events in ACKS), as a step
# with `check`/`need` only through host_step.
ACKS=0
host_do() {
    ACKS=$((ACKS + 1))
    host_event "$1"
    i=0
    while [ $i -lt $((${2:-120} * 2)) ]; do
        # shellcheck disable=SC2046  # the acknowledgement, split into its words
        set -- "$1" "${2:-120}" $(mailbox_get)
        if [ "${3:-}" = ACK ] && [ "${4:-}" = "$ACKS" ]; then
            [ "${5:-}" = "$1" ] || { echo "acknowledged ${5:-?}, not $1"; return 1; }
            echo "host: $1 done, rc=${6:-?}"
            return "${6:-1}"
        fi
        sleep 0.5; i=$((i + 1))
    done
    echo "host did not acknowledge $1"
    return 1
}
# host_step STEP NAME [SECS]: host_do as a result line of its own.
host_step() {
    say "step $1: host_do $2"
    if host_do "$2" "${3:-120}"; then pass "$1"; else fail "$1"; fi
}
mailbox_get() { dd if="$ARCHIVE" bs=4096 skip=$((16 * 256 - 1)) count=1 iflag=direct 2>/dev/null | head -n1 | tr -d '\0'; }

# put DEV FILE MIB: FILE written at MIB MiB of DEV (O_DIRECT, then SYNCHRONIZE CACHE).
put() { dd if="$2" of="$1" bs=1M seek="$3" oflag=direct conv=notrunc,fsync 2>/dev/null; }
# got DEV FILE MIB: DEV holds FILE at MIB MiB (O_DIRECT read).
got() {
    n=$(($(stat -c %s "$2") >> 20))
    dd if="$1" bs=1M skip="$3" count="$n" iflag=direct 2>/dev/null | cmp - "$2"
}
# ---------------------------------------------------------------- background I/O
# io_start NAME DEV FIRST-MIB SLOTS: a background writer/verifier on DEV: round after round,
# fresh random 2 MiB into the next slot (slot k at FIRST-MIB + 2k MiB, O_DIRECT + SYNCHRONIZE
# CACHE), read back (O_DIRECT) and compared. /tmp/NAME.ok gets a line per good round,
# /tmp/NAME.fail one per failed write, read or compare; /tmp/NAME.slotK the last good data.
io_start() {
    rm -f "/tmp/$1".*
    : > "/tmp/$1.ok"; : > "/tmp/$1.fail"
    (
        r=0
        while [ ! -e "/tmp/$1.stop" ]; do
            k=$((r % $4)) m=$(($3 + 2 * (r % $4)))
            dd if=/dev/urandom of="/tmp/$1.new" bs=1M count=2 2>/dev/null
            if ! dd if="/tmp/$1.new" of="$2" bs=1M seek=$m oflag=direct conv=notrunc,fsync 2>"/tmp/$1.err"; then
                echo "round $r: write at $m MiB failed: $(cat "/tmp/$1.err")" >> "/tmp/$1.fail"
                rm -f "/tmp/$1.slot$k"
            elif ! dd if="$2" of="/tmp/$1.back" bs=1M skip=$m count=2 iflag=direct 2>"/tmp/$1.err"; then
                echo "round $r: read at $m MiB failed: $(cat "/tmp/$1.err")" >> "/tmp/$1.fail"
            elif ! cmp -s "/tmp/$1.new" "/tmp/$1.back"; then
                echo "round $r: data read back at $m MiB differs" >> "/tmp/$1.fail"
            else
                mv "/tmp/$1.new" "/tmp/$1.slot$k"
                echo "$r" >> "/tmp/$1.ok"
            fi
            [ -s "/tmp/$1.fail" ] && sleep 0.5    # no busy loop on a dead LUN
            r=$((r + 1))
        done
        touch "/tmp/$1.done"
    ) &
}
io_rounds() { wc -l < "/tmp/$1.ok"; }
# io_more NAME N [SECS]: N more good rounds of NAME (I/O goes on while something happens).
io_more() {
    want=$(($(io_rounds "$1") + $2)) i=0
    while [ "$(io_rounds "$1")" -lt $want ]; do
        i=$((i + 1)); [ $i -gt $((${3:-60} * 10)) ] && { echo "only $(io_rounds "$1") of $want rounds"; io_report "$1"; return 1; }
        sleep 0.1
    done
}
io_stop() {
    touch "/tmp/$1.stop"
    while [ ! -e "/tmp/$1.done" ]; do sleep 0.2; done
}
io_report() { echo "$1: $(io_rounds "$1") good rounds, $(wc -l < "/tmp/$1.fail") failures"; cat "/tmp/$1.fail"; }
# io_clean NAME: at least one round and not a single failure.
io_clean() { io_report "$1"; [ "$(io_rounds "$1")" -gt 0 ] && [ ! -s "/tmp/$1.fail" ]; }
# io_slots_hold NAME DEV FIRST-MIB SLOTS: every slot still holds the last data written to it.
io_slots_hold() {
    k=0
    while [ $k -lt "$4" ]; do
        if [ -e "/tmp/$1.slot$k" ]; then
            got "$2" "/tmp/$1.slot$k" $(($3 + 2 * k)) || { echo "slot $k differs"; return 1; }
        fi
        k=$((k + 1))
    done
}

# ---------------------------------------------------------------- raw SCSI (sg_raw on bsg)
# bsg_of LUN: the LUN's bsg node (/dev/bsg/H:C:T:L); it exists as soon as the SCSI device
# does, whether or not sd attached a disk to it.
bsg_of() {
    for d in /sys/class/iscsi_session/session*/device/target*/*:*:*:"$1"; do
        [ -e "$d" ] && [ -c "/dev/bsg/${d##*/}" ] && { echo "/dev/bsg/${d##*/}"; return 0; }
    done
    return 1
}
be32() { printf '%02x %02x %02x %02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }
# (the CDB below takes be32's four bytes as four words)
# shellcheck disable=SC2046
# scsi_io BSG read|write LBA: one READ(10) or WRITE(10) of 8 blocks (4 KiB) at LBA through
# sg_raw, 30 s command timeout; prints what came back in one word: GOOD, MEDIUM_ERROR,
# NOT_READY, CHECK:<sense key>, or NO_STATUS:<sg_raw exit> (transport error, timeout).
# Parsed in the shell: one process per command, so that a hundred of them stay quick in TCG.
scsi_io() {
    if [ "$2" = write ]; then
        [ -e /tmp/w4k ] || dd if=/dev/urandom of=/tmp/w4k bs=4k count=1 2>/dev/null
        _out=$(sg_raw -t 30 -s 4096 -i /tmp/w4k "$1" 2a 00 $(be32 "$3") 00 00 08 00 2>&1)
    else
        _out=$(sg_raw -t 30 -r 4096 -o /tmp/sg.data "$1" 28 00 $(be32 "$3") 00 00 08 00 2>&1)
    fi
    _rc=$?
    case $_out in
        *"SCSI Status: Check Condition"*"Sense key: Medium Error"*) echo MEDIUM_ERROR ;;
        *"SCSI Status: Check Condition"*"Sense key: Not Ready"*) echo NOT_READY ;;
        *"SCSI Status: Check Condition"*)
            _key=${_out#*Sense key: }
            echo "CHECK:${_key%%[!A-Za-z ]*}" | tr ' ' _ ;;
        *) if [ "$_rc" = 0 ]; then echo GOOD; else echo "NO_STATUS:$_rc"; fi ;;
    esac
}
