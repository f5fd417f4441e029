#!/usr/bin/env bash
# Run libiscsi's iscsi-test-cu conformance suite (the ALL family, one test per process)
# against rustiscsid or tgtd and classify every test PASS / FAIL / SKIP.
#
# Usage: tests/peers/libiscsi-suite.sh [--target rustiscsi|tgt] [--write-expected]
#            [--expected FILE] [--jobs N] [--timeout SECS] [--max-time SECS] [--only REGEX]
#            [--out DIR] [--thin]
#
#   --target T        rustiscsi (default; binary from $RUSTISCSID) or tgt
#   --write-expected  rewrite the expected-pass list from this run's PASS tests
#   --expected FILE   expected-pass list (default tests/peers/libiscsi-expected-pass.txt);
#                     compared for --target rustiscsi, or for any target when given
#   --jobs N          tests run at once, each worker on its own target instance
#                     (default 1: the suite takes ~35 s vs tgt)
#   --timeout SECS    per-test time limit (default 60; the slowest takes ~3 s vs tgt); the
#                     target is restarted after a timeout and after a test during which it
#                     died (noted in the results and the summary)
#   --max-time SECS   tests not started after this many seconds are FAIL "not-run" (1800)
#   --only REGEX      run only the tests whose name matches (debugging)
#   --out DIR         results + logs (default target/peers in the repo)
#   --thin            tgt only: enable thin provisioning on the LU
#
# Output: DIR/libiscsi-<target>.txt ("TEST STATUS SECONDS [NOTE]" lines), logs of every
# test that did not PASS in DIR/libiscsi-<target>-logs/. Last line: "N passed, M failed" (counted over
# the expected list when compared, over all tests otherwise).
# Exit: 0 ok, 1 a regression (an expected test did not PASS), 2 setup error.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/peers/lib.sh
. "$HERE/lib.sh"

target=rustiscsi
write_expected=0
expected=$HERE/libiscsi-expected-pass.txt
expected_given=0
jobs=1
per_test_timeout=60
max_time=1800
only=
out=$PEERS_REPO/target/peers
thin=()
size=512M # below 1 GiB at 512-byte blocks (Read6.BeyondEol skips at exactly 1 GiB)

while (($#)); do
    case $1 in
    --target) target=$2; shift ;;
    --write-expected) write_expected=1 ;;
    --expected) expected=$2; expected_given=1; shift ;;
    --jobs) jobs=$2; shift ;;
    --timeout) per_test_timeout=$2; shift ;;
    --max-time) max_time=$2; shift ;;
    --only) only=$2; shift ;;
    --out) out=$2; shift ;;
    --thin) thin=(--thin) ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) peers_die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
[[ $target = rustiscsi || $target = tgt ]] || peers_die "--target must be rustiscsi or tgt"
[[ $jobs =~ ^[1-9][0-9]*$ ]] || peers_die "--jobs must be a positive integer"
compare=0
if [[ $target = rustiscsi || $expected_given = 1 ]]; then compare=1; fi
if ((write_expected)) && [[ -n $only ]]; then
    peers_die "--write-expected with --only would drop the tests not run"
fi
if ((write_expected)) && [[ $target != rustiscsi && $expected_given = 0 ]]; then
    peers_die "--write-expected with --target $target needs an explicit --expected FILE"
fi

peers_need_libiscsi
[[ $target = tgt ]] && peers_need_tgt
peers_init

INIT1=$PEERS_IQN_BASE:initiator-1
INIT2=$PEERS_IQN_BASE:initiator-2

# The ALL family: FAMILY.SUITE.TEST lines of `iscsi-test-cu -l`.
mapfile -t tests < <(timeout 30 iscsi-test-cu -l 2>/dev/null |
    awk -F. 'NF == 3 && $1 == "ALL" { print }' | grep -E -- "${only:-.}" || true)
((${#tests[@]} > 0)) || peers_die "no tests listed by iscsi-test-cu -l (filter: ${only:-none})"
((jobs > ${#tests[@]})) && jobs=${#tests[@]}

mkdir -p "$out"
results=$out/libiscsi-$target.txt
logs=$out/libiscsi-$target-logs
rm -rf "$logs"
mkdir -p "$logs"

# One target instance per worker: tests write all over the LUN and leave reservations,
# so two tests must never share a LUN.
urls=()
for ((w = 0; w < jobs; w++)); do
    peers_start "$target" "w$w" --size "$size" "${thin[@]}"
    urls+=("${PEER_URL[w$w]}")
done

# classify LOG RC: print PASS, FAIL or SKIP (CUnit counts a skip as a pass).
classify() {
    local log=$1 rc=$2 summary passed failed
    if ((rc == 124 || rc == 137)); then echo FAIL; return; fi
    # "tests  Total Ran Passed Failed Inactive"
    summary=$(awk '$1 == "tests" && NF == 6 { print $4, $5 }' "$log" | tail -n 1)
    if [[ -z $summary ]]; then echo FAIL; return; fi # crashed / no summary
    read -r passed failed <<<"$summary"
    if ((failed > 0)); then echo FAIL; return; fi
    if ((passed == 0)); then echo SKIP; return; fi
    # Skips print "[SKIPPED]", some only at the -V level, which we pass. (Zero asserts
    # is no sign of a skip: e.g. Inquiry.VersionDescriptors checks without CU_ASSERT.)
    if grep -q '\[SKIPPED\]' "$log"; then echo SKIP; return; fi
    echo PASS
}

# worker W: run tests W, W+jobs, ... against target instance wW; append "TEST STATUS SECS"
# lines. If the target dies or a test times out (a wedged target would time out every
# following test), the instance is restarted and the test is marked in the log.
worker() {
    local w=$1 i t log rc st t0 secs url note
    local -a urls
    local me=w$w res=$PEERS_WORKDIR/results.$w
    local orig_pid=${PEER_PID[$me]} child=
    # Runs in a subshell: stop a restarted instance (the parent only knows the first one).
    trap '[[ -n $child ]] && kill "$child" 2>/dev/null; [[ ${PEER_PID[$me]} != "$orig_pid" ]] && peers_stop "$me"; exit 143' TERM
    : >"$res"
    for ((i = w; i < ${#tests[@]}; i += jobs)); do
        t=${tests[i]}
        if (($(date +%s) >= deadline)); then
            printf '%s FAIL 0 not-run(--max-time)\n' "$t" >>"$res"
            continue
        fi
        url=${PEER_URL[$me]}
        # The MultipathIO tests need two paths: give the same LUN twice (two sessions).
        urls=("$url")
        [[ $t == *.MultipathIO.* ]] && urls+=("$url")
        log=$PEERS_WORKDIR/$t.log
        t0=$(date +%s.%N)
        rc=0
        # In the background so a TERM from the parent is handled at once.
        timeout -k 5 "$per_test_timeout" iscsi-test-cu -V -d -S -i "$INIT1" -I "$INIT2" \
            -t "$t" "${urls[@]}" </dev/null >"$log" 2>&1 &
        child=$!
        wait "$child" || rc=$?
        child=
        secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
        st=$(classify "$log" "$rc")
        note=
        if ((rc == 124 || rc == 137)); then
            echo "TIMEOUT after ${per_test_timeout}s" >>"$log"
            note=timeout
        fi
        if ! kill -0 "${PEER_PID[$me]}" 2>/dev/null; then
            echo "TARGET DIED during this test (pid ${PEER_PID[$me]})" >>"$log"
            note="target-died"
            st=FAIL
        fi
        if [[ $st = PASS ]]; then rm -f "$log"; else mv "$log" "$logs/"; fi
        printf '%s %s %s%s\n' "$t" "$st" "$secs" "${note:+ $note}" >>"$res"
        printf '%-55s %s %6ss%s\n' "$t" "$st" "$secs" "${note:+ $note}" >&2
        if [[ -n $note ]]; then
            peers_log "$me: restarting the target after $t ($note)"
            cp "${PEER_DIR[$me]}"/*.log "$logs/$t.target.log" 2>/dev/null || true
            peers_stop "$me"
            rm -rf "${PEER_DIR[$me]}"
            peers_start "$target" "$me" --size "$size" "${thin[@]}"
        fi
    done
    if [[ ${PEER_PID[$me]} != "$orig_pid" ]]; then peers_stop "$me"; fi
}

peers_log "running ${#tests[@]} tests, $jobs at a time, against $target (logs: $logs)"
start=$SECONDS
deadline=$(($(date +%s) + max_time))
for ((w = 0; w < jobs; w++)); do
    worker "$w" &
    PEERS_BG_PIDS+=($!)
done
for p in "${PEERS_BG_PIDS[@]}"; do wait "$p" || peers_die "worker $p failed"; done
PEERS_BG_PIDS=()
elapsed=$((SECONDS - start))

# Results in list order.
cat "$PEERS_WORKDIR"/results.* | sort -k1,1 >"$PEERS_WORKDIR/all"
for t in "${tests[@]}"; do
    awk -v t="$t" '$1 == t { print; f = 1; exit } END { if (!f) print t, "FAIL", 0, "no-result" }' \
        "$PEERS_WORKDIR/all"
done >"$results"

n_pass=$(awk '$2 == "PASS"' "$results" | wc -l)
n_fail=$(awk '$2 == "FAIL"' "$results" | wc -l)
n_skip=$(awk '$2 == "SKIP"' "$results" | wc -l)
echo "libiscsi iscsi-test-cu vs $target: ${#tests[@]} tests in ${elapsed}s ($jobs jobs):" \
    "$n_pass PASS, $n_fail FAIL, $n_skip SKIP"
echo "results: $results"
n_note=$(awk 'NF > 3' "$results" | wc -l)
if ((n_note > 0)); then
    echo "WARNING: $n_note test(s) timed out, killed the target or did not run:"
    awk 'NF > 3 { printf "  %s %s\n", $1, $4 }' "$results"
fi
if ((n_fail > 0)); then
    echo "FAIL: $(awk '$2 == "FAIL" { printf "%s ", $1 }' "$results")"
fi

if ((write_expected)); then
    {
        echo "# libiscsi iscsi-test-cu tests that must PASS against $target (one per line)."
        echo "# Regenerate: tests/peers/libiscsi-suite.sh --target $target --write-expected"
        awk '$2 == "PASS" { print $1 }' "$results"
    } >"$expected"
    echo "wrote $n_pass tests to $expected"
fi

if ((compare)); then
    [[ -e $expected ]] || peers_die "expected list $expected not found"
    mapfile -t want < <(sed 's/#.*//; s/[[:space:]]//g; /^$/d' "$expected")
    declare -A status=()
    while read -r t st _; do status[$t]=$st; done <"$results"
    declare -A wanted=()
    ok=0 bad=0
    for t in "${want[@]}"; do
        wanted[$t]=1
        if [[ -n $only && ! $t =~ $only ]]; then continue; fi
        if [[ ${status[$t]:-MISSING} = PASS ]]; then
            ok=$((ok + 1))
        else
            bad=$((bad + 1))
            echo "REGRESSION: $t ${status[$t]:-MISSING} (expected PASS)"
        fi
    done
    new=()
    for t in "${tests[@]}"; do
        [[ ${status[$t]} = PASS && -z ${wanted[$t]:-} ]] && new+=("$t")
    done
    if ((${#new[@]} > 0 && !write_expected)); then
        echo "Newly passing (${#new[@]}), consider adding to $expected" \
            "(or rerun with --write-expected):"
        printf '  %s\n' "${new[@]}"
    fi
    echo "$ok passed, $bad failed"
    ((bad == 0)) || exit 1
else
    echo "$n_pass passed, $n_fail failed"
fi
