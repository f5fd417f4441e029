#!/usr/bin/env bash
# Throughput and CPU cost of rustiscsid against tgt (the reference userspace target), on
# identical RAM-backed 512 MiB LUNs, same machine, loopback, one workload at a time.
#
# Usage: benches/compare-tgt.sh [--quick] [--self-compare] [--tgt-defaults] [--repeat N]
#            [--loop [direct|buffered]] [--out FILE]
#
#   --quick         smoke run: 1 repetition, ~1/4 of the I/O (about 40 s)
#   --self-compare  run the "ours" column against a second tgtd too (checks the harness,
#                   and shows the noise: every ratio should be ~1.0)
#   --tgt-defaults  leave tgt's negotiation at its defaults (8 KiB segments, InitialR2T=Yes)
#                   instead of the generous settings rustiscsid offers by default
#   --repeat N      runs per workload and target (default 3); the two targets alternate,
#                   the best throughput of each is kept
#   --loop [MODE]   both targets serve the same loop device (over a file on /dev/shm, so the
#                   block path is measured, not a disk) instead of memory: rustiscsid as a
#                   kind = "block" backstore with cache = MODE (default direct, O_DIRECT),
#                   tgt as bstype rdwr (with bsoflags=direct for direct); both write-back,
#                   tgt's default (rustiscsid: write_cache = true). Needs root
#   --out FILE      also write the table there (default target/peers/bench-compare-tgt.txt);
#                   every run (workload|peer|bytes|seconds|cpu ticks) goes to FILE.runs
#
# Both targets run side by side (idle while the other is measured). rustiscsid uses a
# kind="ramdisk" backstore; tgt uses a fully allocated file on /dev/shm (bstype rdwr).
# Throughput ratio = ours/tgt (> 1: we are faster). CPU = utime+stime of the target
# process per GiB moved (from /proc/PID/stat); its ratio = tgt/ours (> 1: we use less CPU).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/peers/lib.sh
. "$HERE/../tests/peers/lib.sh"

quick=0 self=0 repeat=3 repeat_given=0 loop=""
tgt_mode=--generous
out=$PEERS_REPO/target/peers/bench-compare-tgt.txt
while (($#)); do
    case $1 in
    --quick) quick=1 ;;
    --self-compare) self=1 ;;
    --tgt-defaults) tgt_mode=--tgt-defaults ;;
    --repeat) repeat=$2; repeat_given=1; shift ;;
    --out) out=$2; shift ;;
    --loop)
        loop=direct
        if [[ ${2:-} = direct || ${2:-} = buffered ]]; then loop=$2; shift; fi
        ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) peers_die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
[[ $repeat =~ ^[1-9][0-9]*$ ]] || peers_die "--repeat must be a positive integer"
if ((quick && !repeat_given)); then repeat=1; fi

peers_need_libiscsi
peers_need_qemu_img
peers_need_tgt
peers_init

size=512M
# Scale: seconds per iscsi-perf run, divisor for the qemu-img bench op counts.
if ((quick)); then secs=1 div=4; else secs=3 div=1; fi
# 4 KiB pseudo-random: step = 4096 * 7919 (prime). qemu-img bench wraps the offset modulo
# (image size - request size) = 4096 * 131071 (prime too), so every 4 KiB block is visited
# and all offsets stay aligned.
rstep=$((4096 * 7919))

# Workloads: NAME|KIND|ARGS|BYTES_PER_OP|COUNT (COUNT for qemu-img bench only).
workloads=(
    "iscsi-perf rand read 4K qd32|perf|-m 32 -b 8 -r|4096|"
    "iscsi-perf seq read 4K qd32|perf|-m 32 -b 8|4096|"
    "qemu-img rand read 4K qd1|qb|-d 1 -s 4096 -S $rstep|4096|$((40000 / div))"
    "qemu-img rand read 4K qd32|qb|-d 32 -s 4096 -S $rstep|4096|$((75000 / div))"
    "qemu-img rand write 4K qd1|qb|-w -d 1 -s 4096 -S $rstep|4096|$((30000 / div))"
    "qemu-img rand write 4K qd32|qb|-w -d 32 -s 4096 -S $rstep|4096|$((75000 / div))"
    "qemu-img seq read 1M qd1|qb|-d 1 -s 1M|1048576|$((1000 / div))"
    "qemu-img seq read 1M qd32|qb|-d 32 -s 1M|1048576|$((2500 / div))"
    "qemu-img seq write 1M qd1|qb|-w -d 1 -s 1M|1048576|$((1500 / div))"
    "qemu-img seq write 1M qd32|qb|-w -d 32 -s 1M|1048576|$((1500 / div))"
)

dev=()
if [[ -n $loop ]]; then
    [[ $(id -u) = 0 ]] || peers_die "--loop needs root (losetup)"
    loop_file=/dev/shm/rustiscsi-bench-$$.img
    peers_make_backing "$loop_file" "$size"
    loop_dev=$(losetup -f --show "$loop_file")
    trap 'peers_cleanup; losetup -d "$loop_dev"; rm -f "$loop_file"' EXIT
    # tgt's rdwr backstore is write-back (WCE=1, no sync per write): so is ours here.
    dev=(--device "$loop_dev" --cache "$loop" --write-cache)
    peers_log "both targets serve $loop_dev ($loop)"
fi

ours_kind=rustiscsi
((self)) && ours_kind=tgt
if [[ $ours_kind = tgt ]]; then
    peers_start tgt ours --size "$size" "$tgt_mode" "${dev[@]}"
else
    peers_start rustiscsi ours --size "$size" "${dev[@]}"
fi
peers_start tgt ref --size "$size" "$tgt_mode" "${dev[@]}"

clk=$(peers_clk_tck)

# measure PEER KIND ARGS BYTES COUNT: run one workload; print "BYTES SECONDS CPU_TICKS".
# Returns 1 (after logging why) when the client fails or the target process is gone.
measure() {
    local peer=$1 kind=$2 args=$3 bpo=$4 count=$5 url=${PEER_URL[$1]} pid=${PEER_PID[$1]}
    local c0 c1 log=$PEERS_WORKDIR/run.log t ops
    local -a a
    read -r -a a <<<"$args"
    if ! c0=$(peers_cpu_ticks "$pid" 2>/dev/null); then
        peers_log "$peer: target process $pid is gone"
        return 1
    fi
    case $kind in
    perf)
        if ! timeout $((secs + 60)) iscsi-perf -i "$PEERS_IQN_BASE:bench" -t "$secs" "${a[@]}" \
            "$url" >"$log" 2>&1; then
            peers_log "iscsi-perf failed against $peer: $(tail -c 300 "$log")"
            return 1
        fi
        # Progress lines are \r-separated; the last "iops average N" is the whole run.
        ops=$(tr '\r' '\n' <"$log" | grep -o 'iops average [0-9]*' | tail -n 1 | awk '{ print $3 }')
        t=$secs
        bytes=$((${ops:-0} * secs * bpo))
        ;;
    qb)
        if ! timeout 300 qemu-img bench -f raw "${a[@]}" -c "$count" "$url" >"$log" 2>&1; then
            peers_log "qemu-img bench failed against $peer: $(tail -c 300 "$log")"
            return 1
        fi
        t=$(awk '/Run completed in/ { print $4 }' "$log")
        bytes=$((count * bpo))
        ;;
    esac
    if ! c1=$(peers_cpu_ticks "$pid" 2>/dev/null); then
        peers_log "$peer: target process $pid died during the run"
        return 1
    fi
    if [[ -z $t || $bytes = 0 ]]; then
        peers_log "no figure from the client ($peer): $(tail -c 300 "$log")"
        return 1
    fi
    echo "$bytes $t $((c1 - c0))"
}

# Warm-up: write the whole LUN once on both (allocates the ramdisk / page cache).
for p in ours ref; do
    timeout 300 qemu-img bench -f raw -w -d 8 -s 1M -c 512 "${PEER_URL[$p]}" >/dev/null 2>&1 ||
        peers_die "warm-up write failed on $p"
done

peers_log "ours=$ours_kind (${PEER_URL[ours]}), ref=tgt $tgt_mode (${PEER_URL[ref]}); $repeat run(s) each"
t_start=$SECONDS
results=$PEERS_WORKDIR/results
: >"$results"
errors=0
for w in "${workloads[@]}"; do
    IFS='|' read -r name kind args bpo count <<<"$w"
    for ((r = 0; r < repeat; r++)); do
        # Alternate who goes first so drift (thermal, neighbours) hits both sides alike.
        if ((r % 2 == 0)); then order=(ours ref); else order=(ref ours); fi
        for p in "${order[@]}"; do
            if ! measure "$p" "$kind" "$args" "$bpo" "$count" >"$PEERS_WORKDIR/m"; then
                # Keep going: the cell shows ERR and leaves the geometric mean.
                printf '%s|%s|ERR|||\n' "$name" "$p" >>"$results"
                errors=$((errors + 1))
                continue
            fi
            read -r bytes s ticks <"$PEERS_WORKDIR/m"
            printf '%s|%s|%s|%s|%s\n' "$name" "$p" "$bytes" "$s" "$ticks" >>"$results"
            peers_log "$(printf '%-30s %-4s %8.1f MiB/s  cpu %s ticks' "$name" "$p" \
                "$(awk -v b="$bytes" -v s="$s" 'BEGIN { print b / s / 1048576 }')" "$ticks")"
        done
    done
done
elapsed=$((SECONDS - t_start))

# Per workload and peer: best MiB/s, IOPS at that run, CPU seconds per GiB over all runs.
report() {
    local ours_label=$1
    echo "rustiscsi vs tgt: $(nproc) CPUs, $(uname -r), loopback, 512 MiB LUNs, $repeat run(s) per cell, ${elapsed}s"
    if [[ -n $loop ]]; then
        echo "ours: $ours_label; tgt $(tgtd -V 2>/dev/null | head -n 1): $loop_dev (bstype rdwr$([[ $loop = direct ]] && echo ", bsoflags=direct")), ${tgt_mode#--} negotiation; both write-back (tgt's default)"
    else
        echo "ours: $ours_label; tgt $(tgtd -V 2>/dev/null | head -n 1): file on /dev/shm (bstype rdwr), ${tgt_mode#--} negotiation"
    fi
    echo "clients: $(dpkg-query -W -f='libiscsi ${Version}' libiscsi-bin 2>/dev/null), $(qemu-img --version | head -n 1)"
    echo
    awk -F'|' -v clk="$clk" '
        {
            if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
            if ($3 == "ERR") { next }
            k = $1 SUBSEP $2
            mibs = $3 / $4 / 1048576
            if (!(k in best) || mibs > best[k]) { best[k] = mibs; bestsecs[k] = $4; bestbytes[k] = $3 }
            if (!(k in worst) || mibs < worst[k]) { worst[k] = mibs }
            bytes[k] += $3; ticks[k] += $5
        }
        END {
            printf "%-30s %16s %16s %8s %6s | %8s %8s %8s\n", "workload", "ours", "tgt", "ratio", \
                "spread", "cpu ours", "cpu tgt", "ratio"
            printf "%-30s %16s %16s %8s %6s | %8s %8s %8s\n", "", "MiB/s (IOPS)", "MiB/s (IOPS)", \
                "ours/tgt", "max/min", "s/GiB", "s/GiB", "tgt/ours"
            lt = 0; nt = 0; lc = 0; nc = 0
            for (i = 1; i <= n; i++) {
                w = order[i]; o = w SUBSEP "ours"; t = w SUBSEP "ref"
                if (!(o in best) || !(t in best)) {
                    printf "%-30s %16s %16s %8s %6s | %8s %8s %8s\n", w, \
                        ((o in best) ? sprintf("%.1f", best[o]) : "ERR"), \
                        ((t in best) ? sprintf("%.1f", best[t]) : "ERR"), "n/a", "", "", "", "n/a"
                    continue
                }
                cell_o = sprintf("%.1f", best[o]); cell_t = sprintf("%.1f", best[t])
                if (w ~ / 4K /) {
                    cell_o = cell_o sprintf(" (%d)", bestbytes[o] / 4096 / bestsecs[o])
                    cell_t = cell_t sprintf(" (%d)", bestbytes[t] / 4096 / bestsecs[t])
                }
                r = best[o] / best[t]; lt += log(r); nt++
                co = ticks[o] / clk / (bytes[o] / 1073741824)
                ct = ticks[t] / clk / (bytes[t] / 1073741824)
                cr = "n/a"
                if (co > 0 && ct > 0) { cr = sprintf("%.2f", ct / co); lc += log(ct / co); nc++ }
                sp = best[o] / worst[o]; if (best[t] / worst[t] > sp) { sp = best[t] / worst[t] }
                printf "%-30s %16s %16s %8.2f %6.2f | %8.2f %8.2f %8s\n", w, cell_o, cell_t, r, sp, co, ct, cr
            }
            printf "%-30s %16s %16s %8.2f %6s | %8s %8s %8s\n", "geometric mean", "", "", \
                (nt ? exp(lt / nt) : 0), "", "", "", (nc ? sprintf("%.2f", exp(lc / nc)) : "n/a")
            print ""
            print "spread: best/worst run of the noisier side (1.00 = no noise; with one run, 1.00)"
        }' "$results"
}

if ((self)); then
    ours_label="tgt (self-compare: second tgtd, same settings)"
else
    if [[ -n $loop ]]; then
        ours_label="rustiscsid block $loop_dev, cache = $loop, write_cache = true (${RUSTISCSID:-target/release/rustiscsid})"
    else
        ours_label="rustiscsid ramdisk (${RUSTISCSID:-target/release/rustiscsid})"
    fi
fi
mkdir -p "$(dirname "$out")"
report "$ours_label" | tee "$out"
cp "$results" "$out.runs"
if ((errors > 0)); then
    echo "WARNING: $errors run(s) failed (ERR rows in $out.runs; see the log above)" | tee -a "$out"
    exit 1
fi
