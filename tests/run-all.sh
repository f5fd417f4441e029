#!/usr/bin/env bash
# The one test command (README "Tests"): installs what the tests need with apt, then runs
# every suite: formatting and lints, unit and integration tests, config fixtures, the man
# pages and the Debian install path, the Nix checks, QEMU's iscsi:// round trip, libiscsi's
# compliance suite, and the kernel initiator (open-iscsi) in a QEMU guest. Ends with
# "N passed, M failed" over the suites.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$HOME/.cargo/bin:$PATH"

results=()
passed=0
failed=0
run() {
  local name=$1
  shift
  local t0=$SECONDS
  echo
  echo "=== $name: $*"
  if "$@"; then
    results+=("PASS  $name ($((SECONDS - t0)) s)")
    passed=$((passed + 1))
  else
    results+=("FAIL  $name ($((SECONDS - t0)) s)")
    failed=$((failed + 1))
  fi
}

tests/install-deps.sh || exit 1

run "cargo fmt" cargo fmt --all -- --check
run "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
run "cargo test" cargo test --workspace --locked
run "layering (iscsi/scsi/backstore import no server/registry/config)" tests/check-layers.sh
run "release build" cargo build --release --locked
check_fixtures() {
  local ok=0 f
  for f in examples/*.toml nixos-module/examples/rendered/*.toml; do
    target/release/rustiscsid --check --config "$f" || ok=1
  done
  return $ok
}
run "rustiscsid --check on examples and NixOS-rendered fixtures" check_fixtures
run "man pages render, cargo xtask install stages a working install" tests/man-pages.sh
run "nix: parse and evaluate" .ci/nix-check.sh
run "shellcheck" tests/shellcheck.sh
run "qemu-img iscsi:// round trip" tests/peers/qemu-img-roundtrip.sh
run "acknowledged writes survive kill -9 of the daemon and a power cut" tests/peers/crash-durability.sh
run "late block device comes online by itself; a second daemon is refused (loop)" tests/peers/late-backstore.sh
run "instructions per command within 10 % of the baseline (callgrind)" tests/perf-guard.sh
run "fuzz targets, 60 s each (cargo-fuzz, fuzz/)" tests/fuzz.sh
run "libiscsi iscsi-test-cu (expected-pass list)" tests/peers/libiscsi-suite.sh
run "libiscsi with CHAP and mutual CHAP" tests/peers/libiscsi-chap.sh
run "open-iscsi in QEMU (vm-tests/debian)" vm-tests/debian/run.sh

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
