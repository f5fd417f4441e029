#!/usr/bin/env bash
# Man pages and the Debian install path (tests/run-all.sh; ~1 min, after the release build):
#  - `cargo xtask man` generates rustiscsid(8) and rustiscsi(8) from the clap definitions;
#    each page and the hand-written doc/rustiscsi.toml.5 renders with `man -l` (NAME and
#    SYNOPSIS sections) and without a groff warning (`groff -man -ww -z`);
#  - `cargo xtask install --destdir D --no-build` stages binaries, man pages, completions,
#    the systemd unit and the sysusers.d entry; `man -w` finds the pages there, the unit passes
#    `systemd-analyze verify`, the bash completion loads, the installed binary accepts the
#    installed configuration.
#  - rustiscsi.toml(5) names every key of the config model, and only those
#    (tests/manpage_keys.rs, also part of cargo test).
# Ends with "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS  $*"; }
fail() { failed=$((failed + 1)); echo "FAIL  $*"; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
export MANWIDTH=80

for tool in man groff systemd-analyze; do
  command -v "$tool" >/dev/null || { fail "$tool is missing (tests/install-deps.sh installs it)"; echo "$passed passed, $failed failed"; exit 1; }
done

if cargo xtask man --out-dir "$tmp/man" >/dev/null; then
  pass "cargo xtask man"
else
  fail "cargo xtask man"
fi

for page in "$tmp/man/rustiscsid.8" "$tmp/man/rustiscsi.8" doc/rustiscsi.toml.5; do
  name="$(basename "$page")"
  warnings="$(groff -man -ww -z -Tutf8 "$page" 2>&1)"
  if [ -f "$page" ] && [ -z "$warnings" ]; then
    pass "$name: groff has no warning"
  else
    fail "$name: groff warns"
    printf '%s\n' "$warnings" | head -n 10 | sed 's/^/      /'
  fi
  text="$(man -l "$page" 2>"$tmp/man.err")"
  if [ -s "$tmp/man.err" ]; then
    fail "$name: man -l writes to stderr"
    head -n 10 "$tmp/man.err" | sed 's/^/      /'
  elif printf '%s\n' "$text" | grep -q '^NAME' && printf '%s\n' "$text" | grep -q '^SYNOPSIS' &&
    printf '%s\n' "$text" | grep -q "${name%.*}"; then
    pass "$name: man -l renders NAME and SYNOPSIS"
  else
    fail "$name: man -l output lacks NAME/SYNOPSIS"
    printf '%s\n' "$text" | head -n 10 | sed 's/^/      /'
  fi
done

if cargo test --locked --quiet --test manpage_keys >"$tmp/keys.log" 2>&1; then
  pass "rustiscsi.toml(5) documents every key of src/config/mod.rs (tests/manpage_keys.rs)"
else
  fail "rustiscsi.toml(5) and src/config/mod.rs disagree (tests/manpage_keys.rs)"
  grep -E 'panicked|missing|documents keys' "$tmp/keys.log" | head -n 5 | sed 's/^/      /'
fi

dest="$tmp/dest"
if cargo xtask install --destdir "$dest" --no-build >"$tmp/install.log" 2>&1; then
  pass "cargo xtask install --destdir (staged)"
else
  fail "cargo xtask install --destdir"
  tail -n 10 "$tmp/install.log" | sed 's/^/      /'
fi
p="$dest/usr/local"
for f in bin/rustiscsid bin/rustiscsi share/man/man8/rustiscsid.8 share/man/man8/rustiscsi.8 \
  share/man/man5/rustiscsi.toml.5 share/bash-completion/completions/rustiscsi \
  share/bash-completion/completions/rustiscsid share/zsh/site-functions/_rustiscsi \
  share/zsh/site-functions/_rustiscsid share/fish/vendor_completions.d/rustiscsi.fish \
  share/fish/vendor_completions.d/rustiscsid.fish lib/systemd/system/rustiscsi.service \
  lib/sysusers.d/rustiscsi.conf; do
  if [ -s "$p/$f" ]; then pass "installed $f"; else fail "not installed: $f"; fi
done
if [ -s "$dest/etc/rustiscsi/rustiscsi.toml" ]; then pass "installed /etc/rustiscsi/rustiscsi.toml"; else fail "no /etc/rustiscsi/rustiscsi.toml"; fi

for page in rustiscsid rustiscsi rustiscsi.toml; do
  if found="$(MANPATH="$p/share/man" man -w "$page" 2>/dev/null)" && [ "${found#"$p"}" != "$found" ]; then
    pass "man $page finds the installed page"
  else
    fail "man $page does not find the installed page (got: ${found:-nothing})"
  fi
done

# The unit as installed, with ExecStart pointing into the staging directory.
mkdir -p "$tmp/unit"
sed "s#=/usr/local/bin/#=$p/bin/#" "$p/lib/systemd/system/rustiscsi.service" >"$tmp/unit/rustiscsi.service"
if out="$(systemd-analyze verify --man=no "$tmp/unit/rustiscsi.service" 2>&1)" && [ -z "$out" ]; then
  pass "systemd-analyze verify rustiscsi.service"
else
  fail "systemd-analyze verify rustiscsi.service"
  printf '%s\n' "$out" | head -n 10 | sed 's/^/      /'
fi
if grep -qx "ExecStart=/usr/local/bin/rustiscsid --config /etc/rustiscsi/rustiscsi.toml" "$p/lib/systemd/system/rustiscsi.service"; then
  pass "the unit runs the installed rustiscsid with /etc/rustiscsi/rustiscsi.toml"
else
  fail "the unit's ExecStart is not the installed binary"
fi

if bash -c "source '$p/share/bash-completion/completions/rustiscsi' && complete -p rustiscsi" >/dev/null 2>&1; then
  pass "bash completion of rustiscsi loads"
else
  fail "bash completion of rustiscsi does not load"
fi
if "$p/bin/rustiscsid" --check --config "$dest/etc/rustiscsi/rustiscsi.toml" >/dev/null; then
  pass "installed rustiscsid accepts the installed configuration"
else
  fail "installed rustiscsid rejects the installed configuration"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
