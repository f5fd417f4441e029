#!/bin/bash
# Builds the two extra initramfs layers of the guest-target mode (see ../guest-target.sh); each
# is a gzip cpio appended after the base initramfs of ../build-initramfs.sh:
#   storage OUT      mdadm, lvm2, dmsetup, the real udevd (udevadm) with the udev rules that name
#                    md arrays and LVM volumes, the md/dm/virtio-blk modules; all from the host's
#                    Debian packages. Cached in vm-tests/.cache, keyed like the base initramfs.
#   daemon BIN OUT   the rustiscsid binary the tests built (debug info stripped) and the shared
#                    libraries ldd lists for it. Not cached: the binary changes with every build.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR/.. source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

STORAGE_PACKAGES=(mdadm lvm2 dmsetup udev kmod linux-image-amd64)
# Modules on top of the base initramfs (its /init loads virtio_pci, virtio_net).
STORAGE_MODS=(virtio_blk md_mod raid1 dm_mod)
# The udev rules the scenarios rely on: by-id links for virtio disks and md arrays
# (md-name-HOST:NAME), /dev/VG/LV and /dev/mapper links, device-mapper's udev cookies. Left
# out on purpose: 64-md-raid-assembly.rules and 69-lvm.rules (incremental assembly and LVM
# autoactivation), because the scenarios decide when the array and the volume come up.
UDEV_RULES=(01-md-raid-creating.rules 55-dm.rules 56-lvm.rules 60-block.rules
            60-persistent-storage.rules 60-persistent-storage-dm.rules
            63-md-raid-arrays.rules 95-dm-notify.rules)
LVM_TOOLS=(pvcreate vgcreate lvcreate lvextend lvchange vgchange lvs vgs pvs lvremove vgremove)

stage=""
# stage_bin HOST-PATH: the program at the same path in the stage, with its shared libraries.
stage_bin() {
    [[ -x $1 ]] || vmt_die "$1 missing"
    mkdir -p "$stage$(dirname "$1")"
    cp -L "$1" "$stage$1"
    stage_libs "$stage" "$1"
}
pack() { # OUT: the stage as a gzip cpio
    local tmp=$1.tmp.$$
    (cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --owner 0:0) | gzip -1 > "$tmp"
    mv -f "$tmp" "$1"
}

storage_layer() {
    local out=$1 kver key versions cached t
    ensure_packages "${STORAGE_PACKAGES[@]}"
    kver=$(pick_kver)
    versions=$(dpkg-query -W -f='${Package}=${Version}\n' "${STORAGE_PACKAGES[@]}" "linux-image-$kver" | sort)
    key=$( { cat "$0" "$VMT_DIR/lib.sh"; echo "$kver"; echo "$versions"; } | sha256sum | cut -c1-16)
    cached=$VMT_CACHE/guest-target-storage-$kver-$key.cpio.gz
    if [[ ! -s $cached ]]; then
        vmt_log "building the guest-target storage layer ($kver, key $key)"
        mkdir -p "$VMT_CACHE"
        stage=$(mktemp -d "$VMT_CACHE/stage.XXXXXX")
        trap 'rm -rf "$stage"' EXIT
        stage_bin /sbin/mdadm
        stage_bin /sbin/dmsetup
        stage_bin /sbin/lvm
        for t in "${LVM_TOOLS[@]}"; do ln -s lvm "$stage/sbin/$t"; done
        stage_bin /usr/bin/udevadm
        mkdir -p "$stage/lib/systemd" "$stage/lib/udev/rules.d" "$stage/etc/lvm" "$stage/etc/mdadm"
        ln -s /usr/bin/udevadm "$stage/lib/systemd/systemd-udevd"
        for t in "${UDEV_RULES[@]}"; do cp "/lib/udev/rules.d/$t" "$stage/lib/udev/rules.d/"; done
        stage_modules "$stage" "$kver" "${STORAGE_MODS[@]}"
        # No metadata backups or archives (the root is a RAM disk), no dmeventd monitoring.
        cat > "$stage/etc/lvm/lvm.conf" <<'CONF'
backup {
    backup = 0
    archive = 0
}
activation {
    monitoring = 0
}
CONF
        printf 'DEVICE /dev/disk/by-id/virtio-*\nMAILADDR root\n' > "$stage/etc/mdadm/mdadm.conf"
        pack "$cached"
        rm -rf "$stage"
        trap - EXIT
        vmt_log "guest-target storage layer: $cached ($(du -h "$cached" | cut -f1))"
    fi
    [[ $out == "$cached" ]] || cp -f "$cached" "$out"
}

daemon_layer() {
    local bin=$1 out=$2
    [[ -x $bin ]] || vmt_die "rustiscsid not found at $bin (cargo build --release, or set RUSTISCSID)"
    stage=$(mktemp -d "${TMPDIR:-/tmp}/gt-daemon.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage/usr/sbin"
    strip --strip-debug -o "$stage/usr/sbin/rustiscsid" "$bin"
    stage_libs "$stage" "$bin"
    pack "$out"
    rm -rf "$stage"
    trap - EXIT
}

case ${1:-} in
    storage) (($# == 2)) || vmt_die "usage: $0 storage OUT"; storage_layer "$2" ;;
    daemon) (($# == 3)) || vmt_die "usage: $0 daemon BIN OUT"; daemon_layer "$2" "$3" ;;
    *) vmt_die "usage: $0 storage OUT | daemon BIN OUT" ;;
esac
