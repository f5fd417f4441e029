# shellcheck shell=sh
# Guest-side helpers (busybox ash), sourced by /scenario/run.sh before the scenario's guest
# part. Results go to ttyS1 as single lines the host parses:
#   RESULT <scenario> <step> PASS|FAIL [detail]     one per step
#   HOST <event>                                   ask the host to act (restart, reload, ...)
#   DONE <scenario> <failures>                     last line
# Everything else (command output, kernel messages) goes to the console, ttyS0.
# All variables are exported (set -a in run.sh) so steps can run in `timeout sh -c`.

FAILS=0
STEP_TIMEOUT=${STEP_TIMEOUT:-60}
ISCSIADM_ABSTRACT=ISCSIADM_ABSTRACT_NAMESPACE

res() { echo "$*" >/dev/ttyS1; }
say() { echo "### $*"; }
pass() { res "RESULT $SCENARIO $1 PASS${2:+ $2}"; say "PASS $1${2:+ $2}"; }
fail() { FAILS=$((FAILS + 1)); res "RESULT $SCENARIO $1 FAIL${2:+ $2}"; say "FAIL $1${2:+ $2}"; }

# check STEP CMD [ARGS...]: one step, PASS when CMD (a program or a function of this
# library or of the scenario) exits 0 within STEP_TIMEOUT seconds. Runs in a child shell, so
# it cannot set variables for later steps.
check() {
    _step=$1; shift
    say "step $_step: $*"
    timeout "$STEP_TIMEOUT" sh -c '. /scenario/guest-lib.sh; . /scenario/guest.sh; "$@"' sh "$@"
    _rc=$?
    if [ "$_rc" = 0 ]; then pass "$_step"; return 0; fi
    if [ "$_rc" = 143 ]; then fail "$_step" "timeout after ${STEP_TIMEOUT}s"; else fail "$_step" "rc=$_rc"; fi
    return 1
}
# ev 'SHELL CODE': for check/expect_fail steps that are an expression (with this library's
# and the scenario's functions available).
ev() { eval "$*"; }
# need STEP CMD...: like check, but the scenario cannot go on without it.
need() { check "$@" || abort "$1"; }
# expect_rc STEP RC CMD...: PASS when CMD exits exactly RC (e.g. 24 for a refused login).
expect_rc() {
    _step=$1 _want=$2; shift 2
    say "step $_step (want rc $_want): $*"
    timeout "$STEP_TIMEOUT" sh -c '. /scenario/guest-lib.sh; . /scenario/guest.sh; "$@"' sh "$@"
    _rc=$?
    if [ "$_rc" = "$_want" ]; then pass "$_step" "rc=$_rc"; return 0; fi
    fail "$_step" "rc=$_rc want=$_want"; return 1
}
# expect_fail STEP CMD...: PASS when CMD fails (any non-zero exit).
expect_fail() {
    _step=$1; shift
    say "step $_step (must fail): $*"
    timeout "$STEP_TIMEOUT" sh -c '. /scenario/guest-lib.sh; . /scenario/guest.sh; "$@"' sh "$@"
    _rc=$?
    if [ "$_rc" != 0 ] && [ "$_rc" != 143 ]; then pass "$_step" "rc=$_rc"; return 0; fi
    fail "$_step" "rc=$_rc"; return 1
}
abort() { say "aborting after $1"; finish; sync; poweroff -f; exit 1; }
finish() {
    if [ "$FAILS" -gt 0 ]; then
        echo "=== guest dmesg ==="; dmesg; echo "=== end guest dmesg ==="
        iscsiadm -m session -P 3 2>&1 || true
    fi
    res "DONE $SCENARIO $FAILS"
}
host_event() { res "HOST $1"; say "asked host for: $1"; }

# ---------------------------------------------------------------- iSCSI initiator
iscsid_ready() { grep -q "@$ISCSIADM_ABSTRACT" /proc/net/unix; }
# iscsi_start [INITIATOR-IQN]: (re)start iscsid with that initiator name.
iscsi_start() {
    iscsi_stop
    echo "InitiatorName=${1:-$INITIATOR}" > /etc/iscsi/initiatorname.iscsi
    # Own session: on SIGTERM iscsid signals its whole process group.
    setsid iscsid -f >/tmp/iscsid.log 2>&1 &
    echo $! > /run/iscsid.pid
    i=0
    while ! iscsid_ready; do
        i=$((i + 1)); [ $i -gt 100 ] && { cat /tmp/iscsid.log; return 1; }
        sleep 0.1
    done
}
iscsi_stop() {
    [ -f /run/iscsid.pid ] || return 0
    kill "$(cat /run/iscsid.pid)" 2>/dev/null
    i=0
    while iscsid_ready && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    rm -f /run/iscsid.pid
}
# discover_lists [IQN]: SendTargets discovery lists the IQN.
discover_lists() {
    iscsiadm -m discovery -t st -p "$PORTAL" > /tmp/discovery.out 2>&1
    _rc=$?
    cat /tmp/discovery.out
    [ $_rc = 0 ] || return $_rc
    grep -q " ${1:-$IQN}\$" /tmp/discovery.out
}
# node_new [IQN]: a node record for the portal the guest can reach (SendTargets names the
# target's own 127.0.0.1 address).
node_new() { iscsiadm -m node -o new -T "${1:-$IQN}" -p "$PORTAL" >/dev/null; }
# node_set NAME VALUE [IQN]
node_set() { iscsiadm -m node -T "${3:-$IQN}" -p "$PORTAL" -o update -n "$1" -v "$2"; }
# node_chap USER PASSWORD [MUTUAL-USER MUTUAL-PASSWORD]
node_chap() {
    node_set node.session.auth.authmethod CHAP &&
        node_set node.session.auth.username "$1" && node_set node.session.auth.password "$2" || return 1
    [ -z "${3:-}" ] && return 0
    node_set node.session.auth.username_in "$3" && node_set node.session.auth.password_in "$4"
}
login() { iscsiadm -m node -T "${1:-$IQN}" -p "$PORTAL" -l; }
logout() { iscsiadm -m node -T "${1:-$IQN}" -p "$PORTAL" -u; }
rescan() { iscsiadm -m session -R; }
# luns_seen: the LUN numbers of the session's SCSI devices, sorted, space separated.
luns_seen() {
    for d in /sys/class/iscsi_session/session*/device/target*/*:*:*:*; do
        [ -e "$d" ] && echo "${d##*:}"
    done | sort -n | tr '\n' ' ' | sed 's/ $//'
}
# luns_are "0 1": exactly these LUNs are visible (after a rescan).
luns_are() {
    rescan >/dev/null 2>&1
    sleep 1
    _seen=$(luns_seen)
    echo "LUNs visible: '$_seen', expected '$1'"
    [ "$_seen" = "$1" ]
}
# report_luns_are DEV "0 1": REPORT LUNS (sg_luns) answers exactly these LUNs.
report_luns_are() {
    sg_luns "$1" > /tmp/luns.out || { cat /tmp/luns.out; return 1; }
    cat /tmp/luns.out
    _l=$(sed -n 's/^ *\([0-9a-f]\{16\}\).*/\1/p' /tmp/luns.out | while read -r x; do
        printf '%d\n' "0x$(echo "$x" | cut -c3-4)"; done | sort -n | tr '\n' ' ' | sed 's/ $//')
    echo "REPORT LUNS: '$_l', expected '$2'"
    [ "$_l" = "$2" ]
}
# session_id: the sid of the (only) session.
session_id() { iscsiadm -m session | sed -n 's/^tcp: \[\([0-9]*\)\].*/\1/p' | head -n1; }
# discovery_chap_set USER PASSWORD: CHAP for SendTargets at $PORTAL (discoverydb record).
discovery_chap_set() {
    iscsiadm -m discoverydb -t st -p "$PORTAL" -o new >/dev/null &&
        iscsiadm -m discoverydb -t st -p "$PORTAL" -o update -n discovery.sendtargets.auth.authmethod -v CHAP &&
        iscsiadm -m discoverydb -t st -p "$PORTAL" -o update -n discovery.sendtargets.auth.username -v "$1" &&
        iscsiadm -m discoverydb -t st -p "$PORTAL" -o update -n discovery.sendtargets.auth.password -v "$2"
}
# discoverydb_lists [IQN]: discovery through the discoverydb record (uses its CHAP settings).
discoverydb_lists() {
    iscsiadm -m discoverydb -t st -p "$PORTAL" --discover > /tmp/discovery.out 2>&1
    _rc=$?
    cat /tmp/discovery.out
    [ $_rc = 0 ] || return $_rc
    grep -q " ${1:-$IQN}\$" /tmp/discovery.out
}
# disk_of LUN: the block device of that LUN of the (only) session, or nothing.
disk_of() {
    for d in /sys/class/iscsi_session/session*/device/target*/*:*:*:"$1"/block/*; do
        [ -e "$d" ] && { echo "/dev/${d##*/}"; return 0; }
    done
    return 1
}
# wait_disk LUN [SECS]: prints /dev/sdX once the LUN's disk exists.
wait_disk() {
    i=0
    while [ $i -lt $((${2:-20} * 10)) ]; do
        d=$(disk_of "$1") && [ -b "$d" ] && { echo "$d"; return 0; }
        sleep 0.1; i=$((i + 1))
    done
    echo "no disk for LUN $1" >&2; ls -R /sys/class/iscsi_session/ >&2; return 1
}
wait_no_disk() {
    i=0
    while disk_of "$1" >/dev/null; do
        i=$((i + 1)); [ $i -gt 100 ] && return 1; sleep 0.1
    done
}

# need_disk STEP [LUN]: sets DEV to the LUN's disk (default $DISK_LUN) or aborts.
need_disk() {
    if DEV=$(wait_disk "${2:-$DISK_LUN}"); then pass "$1" "$DEV"; else fail "$1"; abort "$1"; fi
}

# ---------------------------------------------------------------- checks
readcap_is() { # DEV BYTES
    sg_readcap -l "$1" | tee /tmp/readcap.out
    grep -q "Device size: $2 bytes" /tmp/readcap.out && [ "$(blockdev --getsize64 "$1")" = "$2" ]
}
inquiry_ok() { sg_inq "$1" && sg_turs "$1"; }
vpd83_has_naa() {
    sg_vpd -p 0x83 "$1" > /tmp/vpd83.out; _rc=$?
    cat /tmp/vpd83.out
    [ $_rc = 0 ] && grep -q "designator type: NAA" /tmp/vpd83.out || return 1
    sg_inq -p 0x83 "$1" > /tmp/inq83.out || { cat /tmp/inq83.out; return 1; }
    grep -qi "naa" /tmp/inq83.out || { cat /tmp/inq83.out; return 1; }
}
session_shows() { # PATTERN...: iscsiadm -m session -P 2 contains each line pattern
    iscsiadm -m session -P 2 > /tmp/session.out 2>&1 || { cat /tmp/session.out; return 1; }
    for p in "$@"; do grep -q "$p" /tmp/session.out || { cat /tmp/session.out; echo "missing: $p"; return 1; }; done
}
# write_files DIR: 4 files of random data (1, 3, 5, 8 MiB) and their checksums in /tmp/sums.
write_files() {
    for s in 1 3 5 8; do
        dd if=/dev/urandom of="$1/file$s" bs=1M count=$s 2>/dev/null || return 1
    done
    (cd "$1" && sha256sum file* > /tmp/sums) && sync && cat /tmp/sums
}
verify_files() { (cd "$1" && sha256sum -c /tmp/sums); }
# raw_io DEV SIZE: O_DIRECT writes of 1 MiB random data at offset 0, an offset that is not
# MiB-aligned (37 MiB + 25 sectors; half the size + 25 sectors on LUNs up to 64 MiB) and the
# last MiB; read all back and compare.
raw_io() {
    _mib=1048576
    _mid=$((37 * _mib + 25 * 512))
    [ "$2" -gt $((64 * _mib)) ] || _mid=$(($2 / 2 + 25 * 512))
    _offs="0 $_mid $(($2 - _mib))"
    _i=0
    for _o in $_offs; do
        if ! dd if=/dev/urandom of=/tmp/pat$_i bs=1M count=1 2>/dev/null ||
            ! dd if=/tmp/pat$_i of="$1" bs=64K oflag=direct,seek_bytes seek="$_o" conv=notrunc,fsync 2>/dev/null; then
            echo "write at $_o failed"; return 1
        fi
        _i=$((_i + 1))
    done
    _i=0
    for _o in $_offs; do
        dd if="$1" of=/tmp/back$_i bs=64K count=16 iflag=direct,skip_bytes skip="$_o" 2>/dev/null ||
            { echo "read at $_o failed"; return 1; }
        cmp /tmp/pat$_i /tmp/back$_i || { echo "data mismatch at offset $_o"; return 1; }
        echo "offset $_o: 1 MiB O_DIRECT write/read ok"
        _i=$((_i + 1))
    done
}
raw_write_fails() { # DEV: an O_DIRECT write must fail (read-only LUN)
    dd if=/dev/urandom of=/tmp/ro bs=4K count=1 2>/dev/null
    if dd if=/tmp/ro of="$1" bs=4K count=1 oflag=direct conv=notrunc,fsync 2>/tmp/ro.err; then
        echo "write to read-only LUN succeeded"; return 1
    fi
    cat /tmp/ro.err
}

# sha_of DEV-OR-FILE [BYTES]: sha256 of the first BYTES (default all) of it, read with O_DIRECT.
sha_of() {
    if [ -n "${2:-}" ]; then
        dd if="$1" bs=1M count=$(($2 / 1048576)) iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1
    else
        sha256sum "$1" | cut -d' ' -f1
    fi
}

# ---------------------------------------------------------------- the basic I/O suite
# basic_suite: discovery, login, capacity, INQUIRY/VPD 0x83, mkfs, files + checksums across a
# logout/login, O_DIRECT raw I/O, logout. Scenarios hook in with functions they define in
# their guest part: node_options (after the node record exists), after_login (extra checks).
node_options() { :; }
after_login() { :; }
basic_suite() {
    need iscsid_start iscsi_start
    need discovery discover_lists
    need node_record node_new
    need node_options node_options
    need login login
    need_disk disk_appears
    check readcap readcap_is "$DEV" "$LUN_SIZE"
    check inquiry inquiry_ok "$DEV"
    check vpd83_naa vpd83_has_naa "$DEV"
    after_login
    need mkfs mkfs.ext4 -F -q "$DEV"
    need mount mount -t ext4 "$DEV" /mnt
    check write_files write_files /mnt
    need umount umount /mnt
    need logout logout
    check disk_gone wait_no_disk "$DISK_LUN"
    need relogin login
    need_disk disk_reappears
    check fsck e2fsck -fn "$DEV"
    need remount mount -t ext4 "$DEV" /mnt
    check verify_files verify_files /mnt
    need umount2 umount /mnt
    check raw_io raw_io "$DEV" "$LUN_SIZE"
    check final_logout logout
}
# quick_suite: login with the node_options hook, capacity, O_DIRECT raw I/O, logout (for the
# scenarios about authentication and access, where the full basic suite would only add time).
# Hooks: node_options, after_login.
quick_suite() {
    need node_record node_new
    need node_options node_options
    need login login
    need_disk disk_appears
    check readcap readcap_is "$DEV" "$LUN_SIZE"
    after_login
    check raw_io raw_io "$DEV" "$LUN_SIZE"
    check logout logout
    check disk_gone wait_no_disk "$DISK_LUN"
}

# ---------------------------------------------------------------- two initiators, reservations
# A second initiator in the same guest is a second open-iscsi iface with its own
# iface.initiatorname: the target sees another I_T nexus (another name and ISID). Give
# each initiator its own iface (records of open-iscsi's built-in "default" iface do not
# mix with bound ones).
# iface_new IFACE INITIATOR-IQN
iface_new() {
    iscsiadm -m iface -I "$1" -o new >/dev/null &&
        iscsiadm -m iface -I "$1" -o update -n iface.initiatorname -v "$2" >/dev/null
}
# node_new_if IFACE [IQN]: a node record bound to IFACE. node_set, login and logout then act
# on the records of every iface of that target. The portal group tag (1) must be given: a
# record without one is stored in open-iscsi's old one-file layout, and the next iface's
# record replaces it.
node_new_if() { iscsiadm -m node -o new -T "${2:-$IQN}" -p "$PORTAL,1" -I "$1" >/dev/null; }
# session_of INITIATOR-IQN [TARGET-IQN]: the sysfs dir of that initiator's session.
session_of() {
    for s in /sys/class/iscsi_session/session*; do
        [ "$(cat "$s/initiatorname" 2>/dev/null)" = "$1" ] || continue
        [ -z "${2:-}" ] || [ "$(cat "$s/targetname" 2>/dev/null)" = "$2" ] || continue
        echo "$s"; return 0
    done
    return 1
}
# disk_for INITIATOR-IQN [TARGET-IQN]: waits for that session's LUN 0 disk, prints /dev/sdX.
disk_for() {
    i=0
    while [ $i -lt 200 ]; do
        if s=$(session_of "$@"); then
            for d in "$s"/device/target*/*:*:*:0/block/*; do
                [ -e "$d" ] && [ -b "/dev/${d##*/}" ] && { echo "/dev/${d##*/}"; return 0; }
            done
        fi
        sleep 0.1; i=$((i + 1))
    done
    echo "no disk for $*" >&2
    for s in /sys/class/iscsi_session/session*; do
        echo "$s: $(cat "$s/initiatorname" "$s/targetname" 2>&1 | tr '\n' ' ')" >&2
    done
    return 1
}
# need_disk_for STEP VAR INITIATOR-IQN [TARGET-IQN]: sets VAR to that session's disk or aborts.
need_disk_for() {
    _step=$1 _var=$2; shift 2
    if _d=$(disk_for "$@"); then eval "$_var=\$_d"; pass "$_step" "$_d"; else fail "$_step"; abort "$_step"; fi
}
# isid_seen INITIATOR-IQN DEV: the ISID (12 hex digits) of that initiator's registration,
# as READ FULL STATUS reports it (iscsi_tcp does not show the ISID in sysfs).
isid_seen() {
    sg_persist -n -i -s "$2" | sed -n "s/.*port id: $1,i,0x\([0-9a-f]*\).*/\1/p" | head -n1
}

# prin ARGS... DEV / prout ARGS... DEV: sg_persist (no INQUIRY). A unit attention (sg exit 6:
# e.g. REGISTRATIONS PREEMPTED, RESERVATIONS RELEASED) is reported once: retried once.
prin() { sg_persist -n -i "$@"; _rc=$?; [ $_rc = 6 ] && { sg_persist -n -i "$@"; _rc=$?; }; return $_rc; }
prout() { sg_persist -n -o "$@"; _rc=$?; [ $_rc = 6 ] && { sg_persist -n -o "$@"; _rc=$?; }; return $_rc; }
# keys_are DEV [KEY...]: READ KEYS lists exactly these keys (any order; none = no key).
keys_are() {
    _dev=$1; shift
    prin -k "$_dev" > /tmp/keys.out 2>&1 || { cat /tmp/keys.out; return 1; }
    cat /tmp/keys.out
    _got=$(sed -n 's/^ *\(0x[0-9a-f]*\)$/\1/p' /tmp/keys.out | sort | tr '\n' ' ')
    _want=$(for k in "$@"; do echo "$k"; done | sort | tr '\n' ' ')
    echo "keys: '$_got', expected '$_want'"
    [ "$_got" = "$_want" ]
}
# holder_is DEV KEY TYPE-TEXT: READ RESERVATION shows that key and type (sg_persist words,
# e.g. "Write Exclusive, registrants only"); holder_is DEV none: no reservation.
holder_is() {
    prin -r "$1" > /tmp/res.out 2>&1 || { cat /tmp/res.out; return 1; }
    cat /tmp/res.out
    if [ "$2" = none ]; then grep -q "there is NO reservation held" /tmp/res.out; return; fi
    grep -q "Key=$2\$" /tmp/res.out && grep -q "type: $3\$" /tmp/res.out
}
# output_has FILE PATTERN...: every pattern (grep -i -F) is in FILE, printed first.
output_has() {
    _f=$1; shift
    cat "$_f"
    for p in "$@"; do grep -qiF -- "$p" "$_f" || { echo "missing: $p"; return 1; }; done
}
# caps_are DEV PTPL_A: REPORT CAPABILITIES: CRH, SIP_C, ATP_C, PTPL_C set, PTPL_A as given.
caps_are() {
    prin -c "$1" > /tmp/caps.out 2>&1 || { cat /tmp/caps.out; return 1; }
    output_has /tmp/caps.out "(CRH): 1" "(SIP_C): 1" "(ATP_C): 1" "(PTPL_C): 1" "(PTPL_A): $2"
}
# full_status_has DEV PATTERN...: READ FULL STATUS output contains each pattern.
full_status_has() {
    _dev=$1; shift
    prin -s "$_dev" > /tmp/fs.out 2>&1 || { cat /tmp/fs.out; return 1; }
    output_has /tmp/fs.out "$@"
}
# pattern NAME: 1 MiB of random data in /tmp/NAME (made once).
pattern() { [ -s "/tmp/$1" ] || dd if=/dev/urandom of="/tmp/$1" bs=1M count=1 2>/dev/null; }
# write_mib DEV MIB NAME: O_DIRECT write of pattern NAME at MiB offset MIB.
write_mib() {
    pattern "$3" || return 1
    dd if="/tmp/$3" of="$1" bs=1M seek="$2" count=1 oflag=direct conv=notrunc 2>/tmp/dd.err && return 0
    cat /tmp/dd.err; return 1
}
# mib_is DEV MIB NAME|zero: the MiB at MIB holds pattern NAME (or zeros), read with O_DIRECT.
mib_is() {
    dd if="$1" of=/tmp/mib.back bs=1M skip="$2" count=1 iflag=direct 2>/dev/null || return 1
    if [ "$3" = zero ]; then dd if=/dev/zero of=/tmp/mib.want bs=1M count=1 2>/dev/null; else cp "/tmp/$3" /tmp/mib.want; fi
    cmp /tmp/mib.back /tmp/mib.want
}
# write_refused DEV MIB NAME: the O_DIRECT write must fail (RESERVATION CONFLICT), and the
# kernel must have logged why.
write_refused() {
    _n0=$(dmesg | grep -ci "reservation conflict")
    if write_mib "$@"; then echo "the write went through"; return 1; fi
    _n1=$(dmesg | grep -ci "reservation conflict")
    [ "$_n1" -gt "$_n0" ] || { dmesg | tail -20; echo "the kernel logged no new reservation conflict"; return 1; }
}

# roundtrip DEV MIB AT: MIB MiB of random data written with O_DIRECT at AT MiB, read back
# and compared.
roundtrip() {
    dd if=/dev/urandom of=/tmp/rt bs=1M count="$2" 2>/dev/null &&
        dd if=/tmp/rt of="$1" bs=1M seek="$3" oflag=direct conv=notrunc 2>/dev/null &&
        dd if="$1" of=/tmp/rt.back bs=1M skip="$3" count="$2" iflag=direct 2>/dev/null &&
        cmp /tmp/rt /tmp/rt.back
}
