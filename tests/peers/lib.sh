# shellcheck shell=bash
# Shared helpers for the peer scripts (tests/peers/*.sh, benches/compare-tgt.sh).
#
# Source it from a script that runs under `set -euo pipefail`:
#     . "$(dirname "$0")/lib.sh"
#
# Targets are started by name and tracked in associative arrays, so a script can run
# several at once (e.g. rustiscsid and tgtd side by side in the benchmark):
#     peers_start tgt ref --size 512M --generous
#     peers_start rustiscsi ours --size 512M
#     echo "${PEER_URL[ref]}"          # iscsi://127.0.0.1:PORT/IQN/LUN
#     peers_stop ref
# Everything still running is stopped by peers_cleanup, which peers_init installs as the
# EXIT trap (scripts that want their own trap call peers_cleanup from it).
#
# Environment:
#   RUSTISCSID          rustiscsid binary (default: target/release/rustiscsid in the repo)
#   PEERS_NO_INSTALL=1  never run apt-get (fail if a tool is missing)
#   PEERS_KEEP=1        keep the work directory (logs, configs) after the run
#   PEERS_WORKDIR       where to put it (default: a fresh mktemp -d)

PEERS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEERS_IQN_BASE="iqn.2026-11.org.rustiscsi"
PEERS_HOST=127.0.0.1

declare -gA PEER_KIND=() PEER_PORT=() PEER_PID=() PEER_IQN=() PEER_LUN=() PEER_URL=()
declare -gA PEER_DIR=() PEER_CTL=() PEER_BACKING=() PEER_CRED=() PEER_QUERY=()
declare -ga PEERS_ORDER=()
# Background helpers (e.g. test workers) to stop before the targets on exit.
declare -ga PEERS_BG_PIDS=()
PEERS_WORKDIR=${PEERS_WORKDIR:-}

peers_log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
peers_die() {
    peers_log "FATAL: $*"
    exit 2
}

# peers_init: create the work directory and install the EXIT/INT/TERM traps.
peers_init() {
    if [[ -z $PEERS_WORKDIR ]]; then
        PEERS_WORKDIR=$(mktemp -d /tmp/rustiscsi-peers.XXXXXX)
    fi
    mkdir -p "$PEERS_WORKDIR"
    trap peers_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

peers_cleanup() {
    local rc=$?
    set +e
    local n p
    for p in "${PEERS_BG_PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null && peers_wait_exit "$p" 20
    done
    for n in "${PEERS_ORDER[@]}"; do
        [[ -n ${PEER_KIND[$n]:-} ]] && peers_stop "$n"
    done
    if [[ -n $PEERS_WORKDIR && -d $PEERS_WORKDIR ]]; then
        if [[ ${PEERS_KEEP:-0} = 1 || $rc -ne 0 ]]; then
            peers_log "work directory kept: $PEERS_WORKDIR"
        else
            rm -rf "$PEERS_WORKDIR"
        fi
    fi
    return "$rc"
}

# peers_need_pkgs PKG...: install the Debian packages that are missing (idempotent).
peers_need_pkgs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ ${PEERS_NO_INSTALL:-0} = 1 ]] && peers_die "missing packages: ${missing[*]}"
    peers_log "installing ${missing[*]}"
    local try
    for try in 1 2 3 4 5; do
        if timeout 600 apt-get -o DPkg::Lock::Timeout=300 -qq update >&2 &&
            DEBIAN_FRONTEND=noninteractive timeout 900 apt-get \
                -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
                "${missing[@]}" >&2; then
            return 0
        fi
        peers_log "apt-get failed (attempt $try), retrying"
        sleep 20
    done
    peers_die "could not install ${missing[*]}"
}

# The tools each peer script needs.
peers_need_libiscsi() { peers_need_pkgs libiscsi-bin; }
peers_need_tgt() { peers_need_pkgs tgt; }
peers_need_qemu_img() {
    peers_need_pkgs qemu-utils qemu-block-extra
    # The iscsi driver is a loadable module (qemu-block-extra): check qemu-img sees it.
    qemu-img --help | grep -qw iscsi ||
        peers_die "qemu-img has no iscsi:// support (qemu-block-extra missing?)"
}

# peers_port_in_use PORT: true if something listens on (or is bound to) TCP PORT.
peers_port_in_use() {
    local hex
    hex=$(printf '%04X' "$1")
    # /proc/net/tcp*: local_address is ADDR:PORT in hex; any state counts (TIME_WAIT too).
    awk -v p="$hex" 'NR > 1 { split($2, a, ":"); if (a[2] == p) { f = 1 } } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# peers_free_port: print a TCP port nothing uses (random, 20000-59999).
peers_free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if ! peers_port_in_use "$p"; then
            echo "$p"
            return 0
        fi
    done
    peers_die "no free TCP port found"
}

# peers_wait_port HOST PORT TIMEOUT_SECS [PID]: wait until HOST:PORT accepts connections.
# Fails early if PID (the server) exits.
peers_wait_port() {
    local host=$1 port=$2 limit=$3 pid=${4:-}
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        # shellcheck disable=SC2016 # expanded by the inner bash
        if timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null; then
            return 0
        fi
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            peers_log "process $pid exited before $host:$port opened"
            return 1
        fi
        sleep 0.1
    done
    peers_log "timeout: $host:$port did not open within ${limit}s"
    return 1
}

# peers_wait_exit PID TIMEOUT_SECS: wait for PID to go away; true if it did.
peers_wait_exit() {
    local pid=$1 deadline=$((SECONDS + $2))
    while kill -0 "$pid" 2>/dev/null; do
        ((SECONDS >= deadline)) && return 1
        sleep 0.1
    done
    return 0
}

# peers_cpu_ticks PID: utime+stime of PID in clock ticks (see peers_clk_tck).
peers_cpu_ticks() {
    local stat rest
    stat=$(cat "/proc/$1/stat") || return 1
    rest=${stat##*) } # fields after "(comm) "; utime, stime are fields 14, 15 overall
    # shellcheck disable=SC2086
    set -- $rest
    echo $((${12} + ${13}))
}
peers_clk_tck() { getconf CLK_TCK; }

# peers_make_backing FILE SIZE: a RAM-backed file (on /dev/shm), fully allocated.
peers_make_backing() {
    local f=$1 size=$2
    rm -f "$f"
    truncate -s "$size" "$f"
    fallocate -l "$size" "$f" 2>/dev/null || true
}

# peers_start KIND NAME [--size SIZE] [--generous|--tgt-defaults] [--thin] [--chap]
#             [--device DEV [--cache direct|buffered] [--write-cache]] [--fileio]
#             [--daemon-extra TOML] [--bin PATH]
#   KIND: rustiscsi | tgt. Sets PEER_PORT/PID/IQN/LUN/URL[NAME].
#   --device DEV: serve the block device DEV instead of memory (rustiscsid: kind = "block"
#     with that cache mode, default direct; tgt: bstype rdwr, bsoflags=direct for direct).
#   --write-cache (rustiscsi): write_cache = true (tgt's rdwr backstore is write-back).
#   --fileio (rustiscsi): a kind = "fileio" backstore on a fully allocated file on
#     /dev/shm (what tgt serves by default) instead of a ramdisk.
#   --daemon-extra TOML (rustiscsi): more lines for the [daemon] table.
#   --bin PATH (rustiscsi): this rustiscsid binary instead of $RUSTISCSID (an old build).
#   --generous (tgt): raise MaxRecvDataSegmentLength/FirstBurstLength/MaxBurstLength,
#     InitialR2T=No, ImmediateData=Yes (rustiscsid offers these by default).
#   --thin (tgt): thin_provisioning=1 on the LU (UNMAP, GET LBA STATUS).
#   --chap (rustiscsi): ACLs for libiscsi's two test initiators with mutual CHAP (MD5,
#     all libiscsi 1.19 speaks); PEER_URL carries the credentials.
peers_start() {
    local kind=$1 name=$2
    shift 2
    local size=512M generous=0 thin=0 chap=0
    PEERS_DEVICE="" PEERS_CACHE=direct PEERS_WRITE_CACHE=false PEERS_FILEIO=0 PEERS_DAEMON_EXTRA="" PEERS_BIN=""
    while (($#)); do
        case $1 in
        --size) size=$2; shift ;;
        --fileio) PEERS_FILEIO=1 ;;
        --daemon-extra) PEERS_DAEMON_EXTRA=$2; shift ;;
        --bin) PEERS_BIN=$2; shift ;;
        --device) PEERS_DEVICE=$2; shift ;;
        --cache) PEERS_CACHE=$2; shift ;;
        --write-cache) PEERS_WRITE_CACHE=true ;;
        --chap) chap=1 ;;
        --generous) generous=1 ;;
        --tgt-defaults) generous=0 ;;
        --thin) thin=1 ;;
        *) peers_die "peers_start: unknown option $1" ;;
        esac
        shift
    done
    [[ -n $PEERS_WORKDIR ]] || peers_die "peers_init was not called"
    [[ -z ${PEER_KIND[$name]:-} ]] || peers_die "peer $name already started"
    local dir=$PEERS_WORKDIR/$name
    mkdir -p "$dir"
    PEER_DIR[$name]=$dir
    PEERS_ORDER+=("$name")
    case $kind in
    rustiscsi) _peers_start_rustiscsi "$name" "$size" "$chap" ;;
    tgt) _peers_start_tgt "$name" "$size" "$generous" "$thin" ;;
    *) peers_die "unknown target kind: $kind (rustiscsi|tgt)" ;;
    esac
    PEER_URL[$name]="iscsi://${PEER_CRED[$name]:-}$PEERS_HOST:${PEER_PORT[$name]}/${PEER_IQN[$name]}/${PEER_LUN[$name]}${PEER_QUERY[$name]:-}"
    peers_log "$name: $kind pid ${PEER_PID[$name]} at ${PEER_URL[$name]}"
}

peers_rustiscsid_bin() {
    local bin=${RUSTISCSID:-$PEERS_REPO/target/release/rustiscsid}
    [[ -x $bin ]] || peers_die "rustiscsid not found at $bin (build it: cargo build --release, or set RUSTISCSID)"
    echo "$bin"
}

# The CHAP credentials of `peers_start rustiscsi NAME --chap`.
PEERS_CHAP_USER=libiscsi
PEERS_CHAP_SECRET=initiatorsecret1
PEERS_MUTUAL_USER=rustiscsi
PEERS_MUTUAL_SECRET=targetsecret-123

_peers_start_rustiscsi() {
    local name=$1 size=$2 chap=${3:-0} dir=${PEER_DIR[$1]}
    local bin port iqn=$PEERS_IQN_BASE:test access="demo_mode = true" ini
    bin=${PEERS_BIN:-$(peers_rustiscsid_bin)}
    [[ -x $bin ]] || peers_die "rustiscsid not found at $bin"
    port=$(peers_free_port)
    mkdir -p "$dir/state"
    if ((PEERS_FILEIO)); then
        PEER_BACKING[$name]=/dev/shm/rustiscsi-peers-$$-$name.img
        peers_make_backing "${PEER_BACKING[$name]}" "$size"
    fi
    if ((chap)); then
        printf '%s\n' "$PEERS_CHAP_SECRET" >"$dir/chap.secret"
        printf '%s\n' "$PEERS_MUTUAL_SECRET" >"$dir/mutual.secret"
        chmod 600 "$dir/chap.secret" "$dir/mutual.secret"
        access=""
        for ini in iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2; do
            access+="[targets.\"$iqn\".acls.\"$ini\"]
chap = { user = \"$PEERS_CHAP_USER\", password_file = \"$dir/chap.secret\" }
mutual_chap = { user = \"$PEERS_MUTUAL_USER\", password_file = \"$dir/mutual.secret\" }
"
        done
        PEER_CRED[$name]="$PEERS_CHAP_USER%$PEERS_CHAP_SECRET@"
        PEER_QUERY[$name]="?target_user=$PEERS_MUTUAL_USER&target_password=$PEERS_MUTUAL_SECRET"
    fi
    cat >"$dir/rustiscsid.toml" <<EOF
# Generated by tests/peers/lib.sh
[daemon]
portals = ["$PEERS_HOST:$port"]
state_dir = "$dir/state"
control_socket = "$dir/control.sock"
$PEERS_DAEMON_EXTRA

[iscsi]
header_digest = ["None", "CRC32C"]

[backstores.disk]
$(if [[ -n $PEERS_DEVICE ]]; then
        printf 'kind = "block"\npath = "%s"\ncache = "%s"\nwrite_cache = %s\n' \
            "$PEERS_DEVICE" "$PEERS_CACHE" "$PEERS_WRITE_CACHE"
    elif ((PEERS_FILEIO)); then
        printf 'kind = "fileio"\npath = "%s"\nwrite_cache = %s\n' \
            "${PEER_BACKING[$name]}" "$PEERS_WRITE_CACHE"
    else
        printf 'kind = "ramdisk"\nsize = "%s"\n' "$size"
    fi)

[targets."$iqn"]
luns = [{ lun = 0, backstore = "disk" }]
$access
EOF
    PEER_KIND[$name]=rustiscsi
    PEER_PORT[$name]=$port
    PEER_IQN[$name]=$iqn
    PEER_LUN[$name]=0
    setsid "$bin" --config "$dir/rustiscsid.toml" </dev/null >"$dir/rustiscsid.log" 2>&1 &
    PEER_PID[$name]=$!
    if ! peers_wait_port "$PEERS_HOST" "$port" 30 "${PEER_PID[$name]}"; then
        tail -n 30 "$dir/rustiscsid.log" >&2 || true
        peers_die "rustiscsid did not start"
    fi
}

# tgtadm for peer NAME.
peers_tgtadm() {
    local name=$1
    shift
    timeout 30 tgtadm -C "${PEER_CTL[$name]}" "$@"
}

_peers_start_tgt() {
    local name=$1 size=$2 generous=$3 thin=$4 dir=${PEER_DIR[$1]}
    local port ctl iqn=$PEERS_IQN_BASE:tgt
    port=$(peers_free_port)
    # Control port: tgtd's socket is /run/tgtd/socket.N (plus a .lock).
    for _ in $(seq 1 100); do
        ctl=$((1000 + RANDOM % 8000))
        [[ -e /run/tgtd/socket.$ctl || -e /var/run/tgtd/socket.$ctl ]] || break
    done
    local backing=/dev/shm/rustiscsi-peers-$$-$name.img bsoflags=()
    if [[ -n $PEERS_DEVICE ]]; then
        backing=$PEERS_DEVICE
        [[ $PEERS_CACHE = direct ]] && bsoflags=(--bsoflags direct)
    else
        peers_make_backing "$backing" "$size"
        PEER_BACKING[$name]=$backing
    fi
    PEER_KIND[$name]=tgt
    PEER_PORT[$name]=$port
    PEER_IQN[$name]=$iqn
    PEER_LUN[$name]=1 # LUN 0 is tgt's controller
    PEER_CTL[$name]=$ctl
    setsid tgtd -f -C "$ctl" --iscsi "portal=$PEERS_HOST:$port" </dev/null >"$dir/tgtd.log" 2>&1 &
    PEER_PID[$name]=$!
    # tgtd listens before it is configured; wait for its control socket instead.
    local deadline=$((SECONDS + 20))
    until peers_tgtadm "$name" --op show --mode sys >/dev/null 2>&1; do
        if ((SECONDS >= deadline)) || ! kill -0 "${PEER_PID[$name]}" 2>/dev/null; then
            tail -n 30 "$dir/tgtd.log" >&2 || true
            peers_die "tgtd did not start"
        fi
        sleep 0.1
    done
    local a=(--lld iscsi --mode target --tid 1)
    peers_tgtadm "$name" "${a[@]}" --op new -T "$iqn"
    local lu=(--lld iscsi --mode logicalunit --tid 1 --lun 1)
    peers_tgtadm "$name" "${lu[@]}" --op new -b "$backing" --bstype rdwr "${bsoflags[@]}"
    if ((thin)); then
        peers_tgtadm "$name" "${lu[@]}" --op update --params thin_provisioning=1
    fi
    peers_tgtadm "$name" "${a[@]}" --op bind -I ALL
    peers_tgtadm "$name" "${a[@]}" --op update --name HeaderDigest --value CRC32C,None
    if ((generous)); then
        local kv
        for kv in MaxRecvDataSegmentLength=262144 FirstBurstLength=262144 \
            MaxBurstLength=1048576 InitialR2T=No ImmediateData=Yes; do
            peers_tgtadm "$name" "${a[@]}" --op update --name "${kv%%=*}" --value "${kv#*=}"
        done
    fi
    peers_wait_port "$PEERS_HOST" "$port" 20 "${PEER_PID[$name]}" || peers_die "tgtd portal closed"
}

# peers_stop NAME: stop a target (tgt: delete target + system; rustiscsid: SIGTERM).
peers_stop() {
    local name=$1 pid=${PEER_PID[$1]:-}
    [[ -n ${PEER_KIND[$name]:-} ]] || return 0
    case ${PEER_KIND[$name]} in
    rustiscsi)
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            if ! peers_wait_exit "$pid" 15; then
                peers_log "$name: rustiscsid ignored SIGTERM for 15s, killing"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        [[ -n ${PEER_BACKING[$name]:-} ]] && rm -f "${PEER_BACKING[$name]}"
        ;;
    tgt)
        # tgtd ignores SIGTERM: remove the target, then ask the daemon to exit.
        peers_tgtadm "$name" --lld iscsi --mode target --op delete --tid 1 --force \
            >/dev/null 2>&1 || true
        peers_tgtadm "$name" --mode system --op delete >/dev/null 2>&1 || true
        if [[ -n $pid ]] && ! peers_wait_exit "$pid" 15; then
            peers_log "$name: tgtd did not exit, killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "/run/tgtd/socket.${PEER_CTL[$name]}" "/run/tgtd/socket.${PEER_CTL[$name]}.lock"
        [[ -n ${PEER_BACKING[$name]:-} ]] && rm -f "${PEER_BACKING[$name]}"
        ;;
    esac
    if [[ -n $pid ]]; then wait "$pid" 2>/dev/null || true; fi
    unset "PEER_KIND[$name]"
}
