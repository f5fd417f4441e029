#!/usr/bin/env bash
# Builds the cargo-fuzz targets (fuzz/) and runs each for FUZZ_SECS seconds (default 60)
# from its committed seed corpus; any crash, leak, timeout or OOM fails. The stable
# toolchain runs cargo-fuzz with RUSTC_BOOTSTRAP=1. Costs ~6 min of fuzzing plus the
# build (~6 min from scratch on 2 cores). A crash leaves its input under
# fuzz/artifacts/<target>/ and prints the reproducer command.
#   FUZZ_SECS=900 tests/fuzz.sh            # longer runs
#   FUZZ_TARGETS="login cdb" tests/fuzz.sh  # some targets only
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export RUSTC_BOOTSTRAP=1
secs=${FUZZ_SECS:-60}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
targets=${FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir fuzz)}
nice -n 10 cargo fuzz build -O --fuzz-dir fuzz

failed=()
for t in $targets; do
  # Run on a copy: new inputs the fuzzer finds do not touch the committed seeds.
  work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX")
  cp fuzz/corpus/"$t"/* "$work"/
  echo "=== fuzz $t for ${secs}s"
  if nice -n 10 cargo fuzz run -O --fuzz-dir fuzz "$t" "$work" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
    echo "fuzz $t: no crash in ${secs}s"
  else
    failed+=("$t")
  fi
  rm -rf "$work"
done
if ((${#failed[@]})); then
  echo "fuzz: crashes in ${failed[*]} (inputs under fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: $(wc -w <<<"$targets") targets, ${secs}s each, no crash"
