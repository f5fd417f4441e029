#!/usr/bin/env bash
# rustiscsid against tgt (the reference userspace target), like with like, on this machine:
# every figure of issue 12's table, each with the noise floor (a second tgt against the
# first, same run), plus the old-vs-new comparison of issue 8.
#
# Usage: benches/compare-tgt.sh [--quick] [--repeat N] [--sections LIST] [--tgt-defaults]
#            [--loop-cache direct|buffered] [--old COMMIT] [--out FILE]
#
#   --sections LIST  comma-separated, default all of: fileio,loop,sessions,idle,old
#     fileio    rustiscsid fileio on a file on /dev/shm (tmpfs) against tgt's rdwr
#               backstore on a file on the same tmpfs, both write-back (tgt's default;
#               rustiscsid: write_cache = true); a second tgt (noise floor); rustiscsid's
#               ramdisk as an extra column
#     loop      the same, every target serving one loop device (over a file on /dev/shm,
#               so the block path is measured, not a disk): rustiscsid kind = "block",
#               cache = --loop-cache (default direct, O_DIRECT), tgt bstype rdwr with
#               bsoflags=direct for direct. Needs root (losetup)
#     sessions  64 sessions x qd4 4 KiB reads, aggregate against the best single session
#               (qd4 or qd32), rustiscsid (fileio) and tgt, lean client (benches/sessions)
#     idle      1000 logged-in idle sessions: RSS per session, rustiscsid and tgt
#     old       this rustiscsid against the one built from --old (default 7eb3a12, before
#               the session core) in a temporary worktree outside the repository, fileio
#               on tmpfs, interleaved
#   --quick          1 run per cell, a quarter of the I/O (about 3-4 minutes in all)
#   --repeat N       runs per cell (default 3); targets take turns going first, the best
#                    throughput of each is kept, CPU is summed over all runs
#   --tgt-defaults   tgt keeps its default negotiation (8 KiB segments, InitialR2T=Yes)
#                    instead of the generous settings rustiscsid offers by default
#   --out FILE       the report (default target/peers/bench-compare-tgt.txt); every run
#                    (section|workload|peer|bytes|seconds|cpu ticks) goes to FILE.runs
#
# Throughput ratio = ours/tgt (> 1: we are faster). CPU = utime+stime of the target process
# (all threads) per GiB moved; ratio tgt/ours (> 1: we use less). qemu-img bench has no
# random mode: the step is 4096 x 7919 (prime) and the offset wraps modulo (512 MiB - 4 KiB)
# = 4096 x 131071 (prime), so every 4 KiB block is visited, scattered, all aligned.
# Exit 1 if a run failed (ERR in the table), 2 on a setup error.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/peers/lib.sh
. "$HERE/../tests/peers/lib.sh"

quick=0 repeat=3 repeat_given=0 sections=fileio,loop,sessions,idle,old loop_cache=direct
old_rev=7eb3a12
tgt_mode=--generous
out=$PEERS_REPO/target/peers/bench-compare-tgt.txt
while (($#)); do
    case $1 in
    --quick) quick=1 ;;
    --repeat) repeat=$2; repeat_given=1; shift ;;
    --sections) sections=$2; shift ;;
    --tgt-defaults) tgt_mode=--tgt-defaults ;;
    --loop-cache) loop_cache=$2; shift ;;
    --loop) # older spelling: only the loop section
        sections=loop
        if [[ ${2:-} = direct || ${2:-} = buffered ]]; then loop_cache=$2; shift; fi
        ;;
    --old) old_rev=$2; shift ;;
    --out) out=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) peers_die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
[[ $repeat =~ ^[1-9][0-9]*$ ]] || peers_die "--repeat must be a positive integer"
((quick && !repeat_given)) && repeat=1
[[ $loop_cache = direct || $loop_cache = buffered ]] || peers_die "--loop-cache: direct or buffered"
want() { [[ ,$sections, = *,$1,* ]]; }

peers_need_libiscsi
peers_need_qemu_img
peers_need_tgt
peers_init
ulimit -n 8192 # 1000 idle sessions: a descriptor each on both sides

size=512M
if ((quick)); then secs=1 div=4; else secs=3 div=1; fi
rstep=$((4096 * 7919))
clk=$(peers_clk_tck)
results=$PEERS_WORKDIR/results
: >"$results"
errors=0
t_start=$SECONDS
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# The lean clients (release profile).
peers_log "building the lean clients (cargo bench --no-run)"
bench_bin() {
    (cd "$PEERS_REPO" && cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null) |
        sed -n "s/.*\"executable\":\"\\([^\"]*$1[^\"]*\\)\".*/\\1/p" | tail -n 1
}
wire_read=$(bench_bin wire_read)
sessions=$(bench_bin sessions)
[[ -x $wire_read && -x $sessions ]] || peers_die "could not build benches/wire_read.rs and benches/sessions.rs"

# Workloads of the table: NAME|KIND|ARGS|BYTES_PER_OP|COUNT.
#   qb: qemu-img bench ARGS -c COUNT; wr: wire_read QD SECONDS BLOCKS (1 MiB = 2048).
workloads=(
    "4K rand read qd1|qb|-d 1 -s 4096 -S $rstep|4096|$((40000 / div))"
    "4K rand read qd32|qb|-d 32 -s 4096 -S $rstep|4096|$((75000 / div))"
    "4K rand write qd1|qb|-w -d 1 -s 4096 -S $rstep|4096|$((30000 / div))"
    "4K rand write qd32|qb|-w -d 32 -s 4096 -S $rstep|4096|$((75000 / div))"
    "128K seq read qd8|qb|-d 8 -s 128K|131072|$((8000 / div))"
    "1M seq read qd8|qb|-d 8 -s 1M|1048576|$((2000 / div))"
    "1M seq write qd8|qb|-w -d 8 -s 1M|1048576|$((1500 / div))"
    "1M seq read qd8 (lean client)|wr|8 $secs 2048|1048576|"
)
# The geometric mean of the issue: the first seven.
geo_n=7

host_port() { echo "$PEERS_HOST:${PEER_PORT[$1]}"; }

# measure PEER KIND ARGS BYTES COUNT: one run; prints "BYTES SECONDS CPU_TICKS".
measure() {
    local peer=$1 kind=$2 args=$3 bpo=$4 count=$5 pid=${PEER_PID[$1]:-}
    local c0=0 c1=0 log=$PEERS_WORKDIR/run.log t bytes mibs
    local -a a
    read -r -a a <<<"$args"
    if [[ -n $pid ]] && ! c0=$(peers_cpu_ticks "$pid" 2>/dev/null); then
        peers_log "$peer: target process $pid is gone"
        return 1
    fi
    case $kind in
    qb)
        if ! timeout 300 qemu-img bench -f raw "${a[@]}" -c "$count" "${PEER_URL[$peer]}" >"$log" 2>&1; then
            peers_log "qemu-img bench failed against $peer: $(tail -c 300 "$log")"
            return 1
        fi
        t=$(awk '/Run completed in/ { print $4 }' "$log")
        bytes=$((count * bpo))
        ;;
    wr)
        if ! timeout 120 "$wire_read" "$(host_port "$peer")" "${PEER_IQN[$peer]}" "${a[@]}" \
            "${PEER_LUN[$peer]}" >"$log" 2>&1; then
            peers_log "wire_read failed against $peer: $(tail -c 300 "$log")"
            return 1
        fi
        # "wire_read: N x 1024 KiB reads at qd 8 in S s: M MiB/s"
        t=$(sed -n 's/.* in \([0-9.]*\) s: .*/\1/p' "$log")
        mibs=$(sed -n 's/.*: \([0-9.]*\) MiB\/s.*/\1/p' "$log")
        bytes=$(awk -v m="$mibs" -v s="$t" 'BEGIN { printf "%.0f", m * s * 1048576 }')
        ;;
    sess)
        # ARGS: SESSIONS QD
        if ! timeout 120 "$sessions" read "$(host_port "$peer")" "${PEER_IQN[$peer]}" \
            "${PEER_LUN[$peer]}" "${a[@]}" "$secs" "$bpo" >"$log" 2>&1; then
            peers_log "sessions read failed against $peer: $(tail -c 300 "$log")"
            return 1
        fi
        t=$(sed -n 's/.* seconds \([0-9.]*\).*/\1/p' "$log")
        mibs=$(sed -n 's/.* mib_s \([0-9.]*\) .*/\1/p' "$log")
        bytes=$(awk -v m="$mibs" -v s="$t" 'BEGIN { printf "%.0f", m * s * 1048576 }')
        ;;
    tcp)
        timeout 60 "$sessions" tcp "$secs" >"$log" 2>&1 || {
            peers_log "tcp stream failed: $(tail -c 300 "$log")"
            return 1
        }
        t=$(sed -n 's/.* seconds \([0-9.]*\).*/\1/p' "$log")
        mibs=$(sed -n 's/mib_s \([0-9.]*\) .*/\1/p' "$log")
        bytes=$(awk -v m="$mibs" -v s="$t" 'BEGIN { printf "%.0f", m * s * 1048576 }')
        ;;
    esac
    if [[ -n $pid ]] && ! c1=$(peers_cpu_ticks "$pid" 2>/dev/null); then
        peers_log "$peer: target process $pid died during the run"
        return 1
    fi
    if [[ -z ${t:-} || ${bytes:-0} = 0 ]]; then
        peers_log "no figure from the client ($peer): $(tail -c 300 "$log")"
        return 1
    fi
    echo "$bytes $t $((c1 - c0))"
}

# run_cells SECTION "PEER..." WORKLOAD...: every workload, REPEAT times, the peers taking
# turns going first; one line per run into $results.
run_cells() {
    local section=$1 name kind args bpo count r i p n
    local -a peers
    read -r -a peers <<<"$2"
    shift 2
    n=${#peers[@]}
    for w in "$@"; do
        IFS='|' read -r name kind args bpo count <<<"$w"
        for ((r = 0; r < repeat; r++)); do
            for ((i = 0; i < n; i++)); do
                p=${peers[$(((i + r) % n))]}
                if ! measure "$p" "$kind" "$args" "$bpo" "$count" >"$PEERS_WORKDIR/m"; then
                    printf '%s|%s|%s|ERR|||\n' "$section" "$name" "$p" >>"$results"
                    errors=$((errors + 1))
                    continue
                fi
                read -r bytes s ticks <"$PEERS_WORKDIR/m"
                printf '%s|%s|%s|%s|%s|%s\n' "$section" "$name" "$p" "$bytes" "$s" "$ticks" >>"$results"
                peers_log "$(printf '%-8s %-32s %-6s %9.1f MiB/s  cpu %s ticks' "$section" "$name" "$p" \
                    "$(awk -v b="$bytes" -v s="$s" 'BEGIN { print b / s / 1048576 }')" "$ticks")"
            done
        done
    done
}

# warm PEER...: write each LUN once (allocates the page cache or ramdisk).
warm() {
    local p
    for p in "$@"; do
        timeout 300 qemu-img bench -f raw -w -d 8 -s 1M -c 512 "${PEER_URL[$p]}" >/dev/null 2>&1 ||
            peers_die "warm-up write failed on $p"
    done
}

stop_all() {
    local p
    for p in "$@"; do peers_stop "$p"; done
}

# The awk that digests $results: best MiB/s per (section, workload, peer), CPU s/GiB over
# every run, the worst run (for the spread).
summarize() {
    awk -F'|' -v clk="$clk" '
        $4 == "ERR" { next }
        {
            k = $1 SUBSEP $2 SUBSEP $3
            mibs = $4 / $5 / 1048576
            if (!(k in best) || mibs > best[k]) best[k] = mibs
            if (!(k in worst) || mibs < worst[k]) worst[k] = mibs
            bytes[k] += $4; ticks[k] += $6
        }
        END {
            for (k in best) {
                split(k, f, SUBSEP)
                cpu = (bytes[k] > 0) ? ticks[k] / clk / (bytes[k] / 1073741824) : 0
                printf "%s|%s|%s|%.3f|%.3f|%.4f\n", f[1], f[2], f[3], best[k], worst[k], cpu
            }
        }' "$results" >"$PEERS_WORKDIR/summary"
}

# get SECTION WORKLOAD PEER FIELD(best|worst|cpu): from the summary ("" if missing).
get() {
    awk -F'|' -v s="$1" -v w="$2" -v p="$3" -v f="$4" '
        $1 == s && $2 == w && $3 == p { print (f == "best" ? $4 : f == "worst" ? $5 : $6) }' \
        "$PEERS_WORKDIR/summary"
}

# table SECTION "COLUMNS": per workload, each peer's best MiB/s, the ratios to "ref".
#   COLUMNS: peer:label pairs; the first is "ours", the second the reference.
table() {
    local section=$1 w name cols=$2 c peer line bo bt
    local -a cs
    read -r -a cs <<<"$cols"
    printf '%-32s' "workload (MiB/s, best run)"
    for c in "${cs[@]}"; do printf ' %12s' "${c#*:}"; done
    for c in "${cs[@]:2}"; do printf ' %9s' "${c#*:}/ref"; done
    printf ' %9s | %8s %8s %8s\n' "ours/ref" "cpu ours" "cpu ref" "ref/ours"
    for w in "${workloads[@]}"; do
        IFS='|' read -r name _ <<<"$w"
        line=$(printf '%-32s' "$name")
        for c in "${cs[@]}"; do
            peer=${c%%:*}
            bo=$(get "$section" "$name" "$peer" best)
            line+=$(printf ' %12s' "${bo:-ERR}")
        done
        bt=$(get "$section" "$name" "${cs[1]%%:*}" best)
        for c in "${cs[@]:2}"; do
            bo=$(get "$section" "$name" "${c%%:*}" best)
            line+=$(awk -v a="$bo" -v b="$bt" 'BEGIN { if (a > 0 && b > 0) printf " %9.2f", a / b; else printf " %9s", "n/a" }')
        done
        bo=$(get "$section" "$name" "${cs[0]%%:*}" best)
        local co ct
        co=$(get "$section" "$name" "${cs[0]%%:*}" cpu)
        ct=$(get "$section" "$name" "${cs[1]%%:*}" cpu)
        line+=$(awk -v a="$bo" -v b="$bt" -v co="$co" -v ct="$ct" 'BEGIN {
            if (a > 0 && b > 0) printf " %9.2f", a / b; else printf " %9s", "n/a"
            printf " | %8.2f %8.2f", co, ct
            if (co > 0 && ct > 0) printf " %8.2f", ct / co; else printf " %8s", "n/a" }')
        echo "$line"
    done
}

# geo SECTION PEER REF: geometric mean of PEER/REF over the first $geo_n workloads.
geo() {
    local i name a b acc=""
    for ((i = 0; i < geo_n; i++)); do
        IFS='|' read -r name _ <<<"${workloads[$i]}"
        a=$(get "$1" "$name" "$2" best)
        b=$(get "$1" "$name" "$3" best)
        [[ -n $a && -n $b ]] && acc+="$a $b "
    done
    awk -v l="$acc" 'BEGIN { n = split(l, v, " "); s = 0; k = 0
        for (i = 1; i + 1 <= n; i += 2) if (v[i] > 0 && v[i + 1] > 0) { s += log(v[i] / v[i + 1]); k++ }
        if (k) printf "%.2f", exp(s / k); else printf "n/a" }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

# rss_kib PID: resident set size in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

declare -A fig=()

# ---- fileio on tmpfs -----------------------------------------------------------------
if want fileio; then
    peers_log "== fileio on tmpfs: rustiscsid fileio vs tgt rdwr (and a second tgt, and the ramdisk)"
    peers_start rustiscsi ours --size "$size" --fileio --write-cache
    peers_start tgt ref --size "$size" "$tgt_mode"
    peers_start tgt noise --size "$size" "$tgt_mode"
    peers_start rustiscsi ram --size "$size"
    warm ours ref noise ram
    run_cells fileio "ours ref noise ram" "${workloads[@]}"
    run_cells fileio "tcp" "one loopback TCP stream|tcp||1048576|"
    stop_all ours ref noise ram
fi

# ---- loop device ---------------------------------------------------------------------
if want loop; then
    [[ $(id -u) = 0 ]] || peers_die "the loop section needs root (losetup)"
    peers_log "== loop device: rustiscsid block (cache = $loop_cache) vs tgt rdwr"
    loop_file=/dev/shm/rustiscsi-bench-$$.img
    peers_make_backing "$loop_file" "$size"
    loop_dev=$(losetup -f --show "$loop_file")
    trap 'peers_cleanup; losetup -d "$loop_dev" 2>/dev/null; rm -f "$loop_file"' EXIT
    dev=(--device "$loop_dev" --cache "$loop_cache")
    peers_start rustiscsi ours "${dev[@]}" --write-cache
    peers_start tgt ref "$tgt_mode" "${dev[@]}"
    peers_start tgt noise "$tgt_mode" "${dev[@]}"
    loop_peers="ours ref noise"
    if [[ $loop_cache = direct ]]; then
        # Issue 14's before and after in the same run: rustiscsid buffered (as block
        # backstores were before O_DIRECT) on a second loop device of the same kind, since
        # a daemon opens its block device O_EXCL.
        loop_file2=/dev/shm/rustiscsi-bench-$$-2.img
        peers_make_backing "$loop_file2" "$size"
        loop_dev2=$(losetup -f --show "$loop_file2")
        trap 'peers_cleanup; losetup -d "$loop_dev" "$loop_dev2" 2>/dev/null; rm -f "$loop_file" "$loop_file2"' EXIT
        peers_start rustiscsi buf --device "$loop_dev2" --cache buffered --write-cache
        loop_peers+=" buf"
    fi
    # shellcheck disable=SC2086 # a list of peer names
    warm $loop_peers
    run_cells loop "$loop_peers" "${workloads[@]}"
    # shellcheck disable=SC2086
    stop_all $loop_peers
    losetup -d "$loop_dev" ${loop_dev2:+"$loop_dev2"}
    rm -f "$loop_file" ${loop_file2:+"$loop_file2"}
    trap peers_cleanup EXIT
fi

# ---- many sessions -------------------------------------------------------------------
if want sessions; then
    peers_log "== 64 sessions x qd4 4 KiB reads against the best single session"
    peers_start rustiscsi ours --size "$size" --fileio --write-cache
    peers_start tgt ref --size "$size" "$tgt_mode"
    peers_start tgt noise --size "$size" "$tgt_mode"
    warm ours ref noise
    run_cells sessions "ours ref noise" \
        "1 session qd4|sess|1 4|4096|" "1 session qd32|sess|1 32|4096|" "64 sessions qd4|sess|64 4|4096|"
    stop_all ours ref noise
fi

# ---- idle sessions -------------------------------------------------------------------
idle_n=1000
declare -A idle_kib=()
if want idle; then
    peers_log "== $idle_n idle logged-in sessions: RSS per session"
    peers_start rustiscsi ours --size 64M --fileio \
        --daemon-extra "max_connections = $((idle_n + 100))"
    peers_start tgt ref --size 64M "$tgt_mode"
    for p in ours ref; do
        # One session first, so that what every session shares is already resident.
        timeout 60 "$sessions" read "$(host_port "$p")" "${PEER_IQN[$p]}" "${PEER_LUN[$p]}" 1 4 1 \
            >/dev/null 2>&1 || peers_log "warm-up read failed on $p"
        r0=$(rss_kib "${PEER_PID[$p]}")
        "$sessions" idle "$(host_port "$p")" "${PEER_IQN[$p]}" "${PEER_LUN[$p]}" "$idle_n" 600 \
            >"$PEERS_WORKDIR/idle.$p" 2>&1 &
        ipid=$!
        PEERS_BG_PIDS+=("$ipid")
        deadline=$((SECONDS + 300))
        until grep -q logged_in "$PEERS_WORKDIR/idle.$p" 2>/dev/null; do
            if ((SECONDS > deadline)) || ! kill -0 "$ipid" 2>/dev/null; then
                peers_log "idle sessions did not log in on $p: $(tail -c 300 "$PEERS_WORKDIR/idle.$p")"
                errors=$((errors + 1))
                break
            fi
            sleep 0.5
        done
        if grep -q "logged_in $idle_n" "$PEERS_WORKDIR/idle.$p"; then
            sleep 3 # let the sessions settle (first NOP timers armed, login buffers freed)
            r1=$(rss_kib "${PEER_PID[$p]}")
            idle_kib[$p]=$(awk -v a="$r0" -v b="$r1" -v n="$idle_n" 'BEGIN { printf "%.1f", (b - a) / n }')
            peers_log "$p: RSS $r0 KiB -> $r1 KiB with $idle_n idle sessions: ${idle_kib[$p]} KiB each"
        fi
        kill "$ipid" 2>/dev/null || true
        wait "$ipid" 2>/dev/null || true
    done
    stop_all ours ref
fi

# ---- old vs new ----------------------------------------------------------------------
if want old; then
    old_bin=$PEERS_REPO/target/bench-old/$old_rev/rustiscsid
    if [[ ! -x $old_bin ]]; then
        peers_log "== building rustiscsid at $old_rev in a temporary worktree (cached in ${old_bin%/*})"
        tmp_wt=$(mktemp -d /tmp/rustiscsi-old.XXXXXX)
        git -C "$PEERS_REPO" worktree add --detach "$tmp_wt/src" "$old_rev" >/dev/null 2>&1 ||
            peers_die "cannot check out $old_rev"
        if ! (cd "$tmp_wt/src" && CARGO_TARGET_DIR=$tmp_wt/target nice -n 10 \
            cargo build --release --locked --bin rustiscsid >"$tmp_wt/build.log" 2>&1); then
            tail -n 20 "$tmp_wt/build.log" >&2
            peers_die "building $old_rev failed"
        fi
        mkdir -p "${old_bin%/*}"
        cp "$tmp_wt/target/release/rustiscsid" "$old_bin"
        git -C "$PEERS_REPO" worktree remove --force "$tmp_wt/src"
        rm -rf "$tmp_wt"
    fi
    peers_log "== old ($old_rev) vs new rustiscsid, fileio on tmpfs"
    peers_start rustiscsi ours --size "$size" --fileio --write-cache
    peers_start rustiscsi old --size "$size" --fileio --write-cache --bin "$old_bin"
    warm ours old
    run_cells old "ours old" "${workloads[@]}"
    stop_all ours old
fi

elapsed=$((SECONDS - t_start))
summarize

report() {
    echo "rustiscsi benchmark: $(nproc) CPUs, $(uname -r), loopback, $repeat run(s) per cell, ${elapsed}s, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "rustiscsid ${RUSTISCSID:-target/release/rustiscsid} ($(git -C "$PEERS_REPO" describe --always --dirty 2>/dev/null)); tgt $(tgtd -V 2>/dev/null | head -n 1), ${tgt_mode#--} negotiation"
    echo "clients: $(dpkg-query -W -f='libiscsi ${Version}' libiscsi-bin 2>/dev/null), $(qemu-img --version | head -n 1), benches/wire_read, benches/sessions"
    if want fileio; then
        echo
        echo "== fileio on tmpfs (ours: rustiscsid fileio, write_cache = true; ref and noise: tgt rdwr; ram: rustiscsid ramdisk)"
        table fileio "ours:ours ref:tgt noise:tgt2 ram:ram"
        fig[geo]=$(geo fileio ours ref)
        fig[geo_noise]=$(geo fileio noise ref)
        fig[geo_ram]=$(geo fileio ram ref)
        echo "geometric mean over the first $geo_n: ours/tgt ${fig[geo]}, tgt2/tgt ${fig[geo_noise]} (noise floor), ram/tgt ${fig[geo_ram]}"
    fi
    if want loop; then
        echo
        echo "== loop device (ours: rustiscsid block, cache = $loop_cache, write_cache = true; ref and noise: tgt rdwr$([[ $loop_cache = direct ]] && echo ", bsoflags=direct"))"
        if [[ $loop_cache = direct ]]; then
            echo "   (buffered: rustiscsid block, cache = buffered, on a second loop device: issue 14's before)"
            table loop "ours:ours ref:tgt noise:tgt2 buf:buffered"
        else
            table loop "ours:ours ref:tgt noise:tgt2"
        fi
        echo "geometric mean over the first $geo_n: ours/tgt $(geo loop ours ref), tgt2/tgt $(geo loop noise ref) (noise floor)"
        [[ $loop_cache = direct ]] &&
            echo "direct/buffered (O_DIRECT after/before): $(geo loop ours buf); buffered/tgt $(geo loop buf ref)"
    fi
    if want sessions; then
        echo
        echo "== many sessions (4 KiB reads, fileio on tmpfs / tgt rdwr on tmpfs; MiB/s, best run)"
        printf '%-20s %10s %10s %10s\n' "" ours tgt tgt2
        for w in "1 session qd4" "1 session qd32" "64 sessions qd4"; do
            printf '%-20s %10s %10s %10s\n' "$w" "$(get sessions "$w" ours best)" \
                "$(get sessions "$w" ref best)" "$(get sessions "$w" noise best)"
        done
    fi
    if want old; then
        echo
        echo "== old ($old_rev) vs new rustiscsid, fileio on tmpfs, write_cache = true"
        table old "ours:new old:old"
        echo "geometric mean over the first $geo_n: new/old $(geo old ours old)"
    fi
    echo
    echo "== issue 12's table (goal; noise floor = the same figure for a second tgt against the first)"
    local a b n t
    if want fileio; then
        printf '%-62s %10s %12s %s\n' "figure (fileio on tmpfs)" "measured" "goal" "noise floor"
        printf '%-62s %10s %12s %s\n' "geomean 4K rr/rw qd1+qd32, 128K+1M seq read, 1M seq write" "${fig[geo]}" ">= 2.0" "${fig[geo_noise]}"
        a=$(get fileio "4K rand read qd1" ours best) b=$(get fileio "4K rand read qd1" ref best)
        n=$(get fileio "4K rand read qd1" noise best)
        printf '%-62s %10s %12s %s\n' "4K random read qd1: mean latency vs tgt" "$(ratio "$b" "$a")" "<= 0.6" "$(ratio "$b" "$n")"
        a=$(get fileio "4K rand read qd32" ours cpu) b=$(get fileio "4K rand read qd32" ref cpu)
        n=$(get fileio "4K rand read qd32" noise cpu)
        printf '%-62s %10s %12s %s\n' "CPU-s per GiB, 4K random read qd32 (tgt: $b)" "$a" "<= 2.5" "tgt2: $n"
        a=$(get fileio "4K rand write qd32" ours cpu) b=$(get fileio "4K rand write qd32" ref cpu)
        n=$(get fileio "4K rand write qd32" noise cpu)
        printf '%-62s %10s %12s %s\n' "CPU-s per GiB, 4K random write qd32 (tgt: $b)" "$a" "<= 2.5" "tgt2: $n"
        a=$(get fileio "1M seq write qd8" ours best) b=$(get fileio "1M seq write qd8" ref best)
        n=$(get fileio "1M seq write qd8" noise best)
        printf '%-62s %10s %12s %s\n' "1 MiB seq write qd8 vs tgt" "$(ratio "$a" "$b")" ">= 1.5" "$(ratio "$n" "$b")"
        a=$(get fileio "1M seq read qd8 (lean client)" ours best) t=$(get fileio "one loopback TCP stream" tcp best)
        n=$(get fileio "1M seq read qd8 (lean client)" noise best)
        printf '%-62s %10s %12s %s\n' "1 MiB seq read qd8 (lean client) vs one loopback TCP stream" \
            "$(awk -v a="$a" -v t="$t" 'BEGIN { if (t > 0) printf "%.0f %%", 100 * a / t; else print "n/a" }')" ">= 90 %" \
            "tgt: $(awk -v a="$(get fileio "1M seq read qd8 (lean client)" ref best)" -v t="$t" 'BEGIN { if (t > 0) printf "%.0f %%", 100 * a / t }'), stream $t MiB/s"
        a=$(get fileio "1M seq read qd8 (lean client)" ours cpu)
        printf '%-62s %10s %12s %s\n' "  its CPU-s per GiB (old binary: see below)" "$a" "half of old" "tgt: $(get fileio "1M seq read qd8 (lean client)" ref cpu)"
    fi
    if want old; then
        a=$(get old "1M seq read qd8 (lean client)" ours cpu) b=$(get old "1M seq read qd8 (lean client)" old cpu)
        printf '%-62s %10s %12s %s\n' "1 MiB seq read qd8, CPU-s per GiB new / old ($a / $b)" "$(ratio "$a" "$b")" "<= 0.5" ""
    fi
    if want sessions; then
        local s1 s32 s64
        for p in ours ref noise; do
            s1=$(get sessions "1 session qd4" $p best) s32=$(get sessions "1 session qd32" $p best)
            s64=$(get sessions "64 sessions qd4" $p best)
            fig[sess_$p]=$(awk -v a="$s1" -v b="$s32" -v c="$s64" 'BEGIN { m = (a > b) ? a : b; if (m > 0 && c > 0) printf "%.2f", c / m; else print "n/a" }')
        done
        printf '%-62s %10s %12s %s\n' "64 sessions x qd4 4K reads, aggregate / best single session" "${fig[sess_ours]}" ">= 0.9" "tgt ${fig[sess_ref]}, tgt2 ${fig[sess_noise]}"
    fi
    if want idle; then
        printf '%-62s %10s %12s %s\n' "RSS per idle logged-in session ($idle_n sessions), KiB" "${idle_kib[ours]:-n/a}" "<= 256" "tgt ${idle_kib[ref]:-n/a}"
    fi
    echo
    echo "ratios: > 1 = rustiscsid faster (latency: < 1 = lower); CPU = target process utime+stime per GiB moved, all runs"
}

mkdir -p "$(dirname "$out")"
report | tee "$out"
cp "$results" "$out.runs"
if ((errors > 0)); then
    echo "WARNING: $errors run(s) failed (ERR rows in $out.runs; see the log above)" | tee -a "$out"
    exit 1
fi
