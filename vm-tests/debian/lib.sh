# shellcheck shell=bash
# Shared host-side helpers for the Debian VM test runner (sourced, not executed).

VMT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VMT_ROOT=$(cd "$VMT_DIR/../.." && pwd)
VMT_CACHE=${VMT_CACHE:-$VMT_ROOT/vm-tests/.cache}

vmt_log() { printf '[vm-tests] %s\n' "$*" >&2; }
vmt_die() { vmt_log "error: $*"; exit 2; }

# Installs the Debian packages given as arguments unless they are already installed.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) != installed ]]; then
            missing+=("$p")
        fi
    done
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || vmt_die "missing packages (need root to install): ${missing[*]}"
    vmt_log "installing: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The guest kernel version: $KVER, else the newest /boot/vmlinuz-*-amd64 that has modules.
pick_kver() {
    if [[ -n ${KVER:-} ]]; then echo "$KVER"; return; fi
    local k v best=""
    for k in /boot/vmlinuz-*-amd64; do
        [[ -e $k ]] || continue
        v=${k#/boot/vmlinuz-}
        [[ -d /lib/modules/$v/kernel ]] && best=$v
    done
    [[ -n $best ]] || vmt_die "no /boot/vmlinuz-*-amd64 with /lib/modules (apt-get install linux-image-amd64)"
    # Glob order is lexical; pick the highest version properly.
    for k in /boot/vmlinuz-*-amd64; do
        v=${k#/boot/vmlinuz-}
        [[ -d /lib/modules/$v/kernel ]] || continue
        if dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
    done
    echo "$best"
}

# stage_libs STAGE PROGRAM: the shared libraries `ldd` lists for PROGRAM, copied to the same
# paths under STAGE (an initramfs being built), symlinks followed.
stage_libs() {
    local lib
    while read -r lib; do
        [[ -e $1$lib ]] && continue
        mkdir -p "$1$(dirname "$lib")"
        cp -L "$lib" "$1$lib"
    done < <(ldd "$2" | awk '/=> \//{print $3} /^\t\//{print $1}')
}

# stage_modules STAGE KVER MODULE...: the kernel modules with their dependencies (as
# `modprobe --show-depends` resolves them for KVER), copied to the same paths under STAGE.
stage_modules() {
    local stage=$1 kver=$2 m ko
    shift 2
    for m in "$@"; do
        while read -r _ ko _; do
            [[ $ko == /* ]] || continue
            mkdir -p "$stage$(dirname "$ko")"
            cp "$ko" "$stage$ko"
        done < <(modprobe -S "$kver" --show-depends "$m" 2>/dev/null || vmt_die "module $m not found for $kver")
    done
}
