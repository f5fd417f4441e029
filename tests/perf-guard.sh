#!/usr/bin/env bash
# Deterministic performance guard: user-space instructions per command through the
# daemon's data path, counted by valgrind's callgrind, against a committed baseline.
#
# Usage: tests/perf-guard.sh [--update] [--repeat N]
#
# benches/datapath.rs runs the real server (login, connection driver, session, SCSI core,
# backstore, outbox) and a lean initiator on one current-thread runtime over loopback
# TCP. Each workload runs twice, with LOW and HIGH commands at queue depth 1; the count is
# (Ir(HIGH) - Ir(LOW)) / (HIGH - LOW), so start-up and login cancel out. Kernel work (the
# copies in read/write syscalls) is not counted: what is counted is what our code costs.
#
# A workload more than 10 % above benches/perf-baseline.txt fails; one more than 10 %
# below says so (update the baseline with --update and commit it). --repeat N runs every
# count N times and prints each (to see that the counts repeat). About 60 s.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

update=0 repeat=1
while (($#)); do
    case $1 in
    --update) update=1 ;;
    --repeat) repeat=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf-guard: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

baseline=benches/perf-baseline.txt
tolerance=10 # percent

command -v valgrind >/dev/null || {
    echo "perf-guard: valgrind is missing (tests/install-deps.sh installs it)" >&2
    exit 1
}
[[ -d /dev/shm && -w /dev/shm ]] || { echo "perf-guard: /dev/shm is not writable" >&2; exit 1; }

echo "perf-guard: building benches/datapath.rs (release profile)"
bin=$(cargo bench --bench datapath --no-run --locked --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*datapath[^"]*\)".*/\1/p' | tail -n 1)
[[ -x $bin ]] || { echo "perf-guard: could not build the datapath bench" >&2; exit 1; }

# NAME|ARGS|LOW|HIGH
workloads=(
    "read 4K ramdisk|read 4096|300|1300"
    "read 1M ramdisk|read 1048576|30|130"
    "read 4K fileio|read 4096|300|1300|fileio"
    "read 1M fileio|read 1048576|30|130|fileio"
    "write 4K fileio|write 4096|300|1300|fileio"
    "write 1M fileio|write 1048576|30|130|fileio"
)

# count ARGS N KIND: total instructions of one run.
count() {
    local out
    # shellcheck disable=SC2086 # ARGS are words
    out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" $1 "$2" ${3:-ramdisk} 2>&1) || {
        echo "$out" | tail -n 20 >&2
        echo "perf-guard: the datapath run failed" >&2
        return 1
    }
    echo "$out" | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

declare -A base=()
if [[ -f $baseline ]]; then
    while read -r name value; do
        [[ -z $name || $name = \#* ]] && continue
        base[${name//_/ }]=$value
    done <"$baseline"
fi

fail=0
results=()
printf '%-18s %12s %12s %8s\n' workload "instr/cmd" baseline change
for w in "${workloads[@]}"; do
    IFS='|' read -r name args low high kind <<<"$w"
    per=""
    for ((i = 0; i < repeat; i++)); do
        lo=$(count "$args" "$low" "$kind") || exit 1
        hi=$(count "$args" "$high" "$kind") || exit 1
        p=$(((hi - lo) / (high - low)))
        if ((repeat > 1)); then
            echo "  $name run $((i + 1)): Ir($low) = $lo, Ir($high) = $hi: $p per command"
        fi
        per=$p
    done
    results+=("${name// /_} $per")
    b=${base[$name]:-}
    if [[ -z $b ]]; then
        printf '%-18s %12d %12s %8s\n' "$name" "$per" "-" "new"
        continue
    fi
    change=$(awk -v a="$per" -v b="$b" 'BEGIN { printf "%+.1f%%", (a - b) * 100 / b }')
    verdict=""
    if ((per * 100 > b * (100 + tolerance))); then
        verdict="  FAIL (more than +$tolerance %)"
        fail=1
    elif ((per * 100 < b * (100 - tolerance))); then
        verdict="  (faster: update the baseline with --update)"
    fi
    printf '%-18s %12d %12d %8s%s\n' "$name" "$per" "$b" "$change" "$verdict"
done

if ((update)); then
    {
        echo "# Instructions per command through the data path (tests/perf-guard.sh --update)."
        echo "# $(date -u +%Y-%m-%d), $(valgrind --version), $(rustc --version)"
        printf '%s\n' "${results[@]}"
    } >"$baseline"
    echo "perf-guard: wrote $baseline"
    exit 0
fi
if ((fail)); then
    echo "perf-guard: instruction count regressed beyond $tolerance % (see above)" >&2
    exit 1
fi
echo "perf-guard: ok"
