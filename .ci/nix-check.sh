#!/usr/bin/env bash
# .ci/nix-check.sh — the Nix checks CI can run without network and without nixpkgs.
#
#  1. installs nix-bin with apt if nix-instantiate is missing;
#  2. `nix-instantiate --parse` on every *.nix file of the repository;
#  3. evaluates nixos-module/ with nixpkgs' lib + stubs (the shared nix-eval/check.sh) — only
#     when a nixpkgs lib is available (NIXLIB=<dir with lib/default.nix>, or NIX_EVAL=<path of
#     check.sh> with NIXLIB_MIRROR); otherwise it says clearly that this step was SKIPPED;
#     when it runs, it also re-renders every good example and compares it with the committed
#     fixture nixos-module/examples/rendered/<name>.toml.
# The fixtures themselves are what CI checks against the daemon (`rustiscsid --check`).
# Real builds, `nix flake check` and the VM tests need a machine with Nix (see nixos-module/README.md).
# Last line: "N passed, M failed"; exit status 1 when M > 0.
set -u
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS  $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }

if ! command -v nix-instantiate >/dev/null; then
  echo "nix-instantiate not found; installing nix-bin with apt"
  if command -v apt-get >/dev/null; then
    sudo_=""
    [ "$(id -u)" -ne 0 ] && sudo_="sudo"
    $sudo_ apt-get update -qq >/dev/null && $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nix-bin >/dev/null
  fi
fi
if ! command -v nix-instantiate >/dev/null; then
  fail "nix-instantiate available (apt-get install nix-bin failed)"
  echo "$passed passed, $failed failed"
  exit 1
fi

echo "== parse"
while IFS= read -r -d '' f; do
  rel="${f#"$root"/}"
  if err="$(nix-instantiate --parse "$f" 2>&1 >/dev/null)"; then
    pass "parse $rel"
  else
    fail "parse $rel"
    printf '%s\n' "$err" | grep -v 'build-users-group' | sed 's/^/      /'
  fi
done < <(find "$root" \( -name .git -o -name target -o -name 'result*' -o -name node_modules \) -prune -o -type f -name '*.nix' -print0 | sort -z)

echo
echo "== module evaluation (lib.evalModules with stubs)"
check="${NIX_EVAL:-}"
if [ -z "$check" ]; then
  for c in "$root/../shared/nix-eval/check.sh" /work/shared/nix-eval/check.sh; do
    [ -x "$c" ] && { check="$c"; break; }
  done
fi
have_lib=0
if [ -n "${NIXLIB:-}" ] && [ -f "$NIXLIB/default.nix" ]; then have_lib=1; fi
if [ -n "${NIXLIB_MIRROR:-}" ] && [ -d "$NIXLIB_MIRROR" ]; then have_lib=1; fi
if [ -z "$check" ] || [ ! -x "$check" ] || [ "$have_lib" = 0 ]; then
  echo "SKIPPED: module evaluation needs nixpkgs' lib (set NIXLIB=/path/to/nixpkgs/lib or"
  echo "         NIXLIB_MIRROR=<git dir of nix-community/nixpkgs.lib>) and nix-eval/check.sh"
  echo "         (set NIX_EVAL=/path/to/check.sh). CI has no network to fetch them; the committed"
  echo "         fixtures nixos-module/examples/rendered/*.toml are checked with rustiscsid instead."
else
  gen="$(mktemp -d)"
  trap 'rm -rf "$gen"' EXIT
  out="$("$check" --quiet --write-generated "$gen" "$root" 2>&1)"
  summary="$(printf '%s\n' "$out" | tail -n 1)"
  printf '%s\n' "$out" | grep -E '^(FAIL|      )' | grep -v -e 'build-users-group' -e '^      wrote ' | head -n 60
  if printf '%s\n' "$summary" | grep -Eq '^[0-9]+ passed, 0 failed$'; then
    pass "module evaluation ($summary)"
  else
    fail "module evaluation ($summary)"
  fi
  for d in "$gen"/*/; do
    name="$(basename "$d")"
    fixture="$root/nixos-module/examples/rendered/$name.toml"
    if [ ! -f "$fixture" ]; then
      fail "fixture $name.toml missing (copy $d/rustiscsi.toml to nixos-module/examples/rendered/$name.toml)"
    elif cmp -s "$d/rustiscsi.toml" "$fixture"; then
      pass "fixture rendered/$name.toml matches the module"
    else
      fail "fixture rendered/$name.toml is stale"
      diff -u "$fixture" "$d/rustiscsi.toml" | head -n 40 | sed 's/^/      /'
    fi
  done
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
