#!/bin/bash
# Builds the test guest's initramfs (gzip cpio) from the host's installed Debian packages:
# busybox-static, open-iscsi, e2fsprogs, sg3-utils, util-linux, coreutils dd, kmod and the
# kernel modules of the iSCSI initiator stack. Cached in vm-tests/.cache keyed by a hash of
# its inputs (this script, guest/init, package versions, kernel version).
#
# Usage: build-initramfs.sh OUT          (env: KVER to pick the kernel, VMT_CACHE)
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 1)) || { echo "usage: $0 OUT" >&2; exit 2; }
OUT=$1

PACKAGES=(linux-image-amd64 busybox-static kmod open-iscsi e2fsprogs util-linux mount
          sg3-utils coreutils cpio gzip)
ensure_packages "${PACKAGES[@]}"

KVER=$(pick_kver)
MODS=(virtio_pci virtio_net scsi_mod scsi_transport_iscsi libiscsi libiscsi_tcp iscsi_tcp
      sd_mod crc32c_generic crc32c_intel ext4)
# name-in-guest:host-path
BINS=(iscsiadm:/sbin/iscsiadm iscsid:/sbin/iscsid mke2fs:/sbin/mke2fs e2fsck:/sbin/e2fsck
      sg_inq:/usr/bin/sg_inq sg_readcap:/usr/bin/sg_readcap sg_vpd:/usr/bin/sg_vpd
      sg_turs:/usr/bin/sg_turs sg_luns:/usr/bin/sg_luns sg_persist:/usr/bin/sg_persist
      blockdev:/sbin/blockdev dd:/bin/dd mount:/bin/mount
      umount:/bin/umount kmod:/bin/kmod)

versions=$(dpkg-query -W -f='${Package}=${Version}\n' "${PACKAGES[@]}" "linux-image-$KVER" 2>/dev/null | sort)
key=$( { cat "$0" "$VMT_DIR/guest/init"; echo "$KVER"; echo "$versions"; } | sha256sum | cut -c1-16)
cached=$VMT_CACHE/initramfs-$KVER-$key.cpio.gz

if [[ ! -s $cached ]]; then
    vmt_log "building initramfs ($KVER, key $key)"
    mkdir -p "$VMT_CACHE"
    stage=$(mktemp -d "$VMT_CACHE/stage.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib64,etc/iscsi,proc,sys,dev,run,tmp,mnt,var/lib/iscsi,scenario}
    ln -s ../run/lock "$stage/var/lock"

    # busybox applets in /bin; the real tools below go to /usr/sbin, which is first in PATH.
    cp /bin/busybox "$stage/bin/busybox"
    for a in $(/bin/busybox --list); do
        [[ $a == busybox ]] || ln -sf busybox "$stage/bin/$a"
    done

    copy_lib() { # copy a shared object to the same path in the stage (following symlinks)
        [[ -e $stage$1 ]] && return 0
        mkdir -p "$stage$(dirname "$1")"
        cp -L "$1" "$stage$1"
    }
    for b in "${BINS[@]}"; do
        name=${b%%:*} path=${b#*:}
        [[ -x $path ]] || vmt_die "$path missing"
        cp -L "$path" "$stage/usr/sbin/$name"
        while read -r lib; do copy_lib "$lib"; done < <(ldd "$path" | awk '/=> \//{print $3} /^\t\//{print $1}')
    done
    for l in modprobe insmod rmmod lsmod depmod modinfo; do ln -sf kmod "$stage/usr/sbin/$l"; done
    ln -sf mke2fs "$stage/usr/sbin/mkfs.ext4"

    # Kernel modules with their dependencies, then depmod for the guest's modprobe.
    mdir=/lib/modules/$KVER
    for m in "${MODS[@]}"; do
        while read -r _ ko _; do
            [[ $ko == /* ]] || continue
            mkdir -p "$stage$(dirname "$ko")"
            cp "$ko" "$stage$ko"
        done < <(modprobe -S "$KVER" --show-depends "$m" 2>/dev/null || vmt_die "module $m not found for $KVER")
    done
    cp "$mdir"/modules.{order,builtin,builtin.modinfo} "$stage$mdir/" 2>/dev/null || true
    depmod -b "$stage" "$KVER"

    # Configuration for the tools.
    cp /etc/mke2fs.conf "$stage/etc/" 2>/dev/null || true
    sed -e 's|^iscsid.startup = .*|iscsid.startup = /bin/true|' \
        -e 's|^node.session.initial_login_retry_max = .*|node.session.initial_login_retry_max = 2|' \
        /etc/iscsi/iscsid.conf > "$stage/etc/iscsi/iscsid.conf"
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$stage/etc/passwd"
    printf 'root:x:0:\n' > "$stage/etc/group"
    printf 'passwd: files\ngroup: files\nhosts: files\n' > "$stage/etc/nsswitch.conf"
    printf '127.0.0.1 localhost\n' > "$stage/etc/hosts"
    ln -sf /proc/mounts "$stage/etc/mtab"
    install -m 0755 "$VMT_DIR/guest/init" "$stage/init"
    mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || vmt_log "warning: cannot mknod /dev/console (not root?)"
    mknod -m 666 "$stage/dev/null" c 1 3 2>/dev/null || true

    tmp=$cached.tmp.$$
    (cd "$stage" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet --owner 0:0) | gzip -1 > "$tmp"
    mv -f "$tmp" "$cached"
    vmt_log "initramfs: $cached ($(du -h "$cached" | cut -f1))"
fi

if [[ $OUT != "$cached" ]]; then
    mkdir -p "$(dirname "$OUT")"
    cp -f "$cached" "$OUT"
fi
