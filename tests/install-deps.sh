#!/usr/bin/env bash
# Installs, with apt, everything the test suites need (idempotent). Run as root on
# Debian 12 / Ubuntu. The Rust toolchain (>= 1.85, e.g. from rustup) must already exist.
set -euo pipefail

PKGS=(
  # the kernel initiator runs in a QEMU guest (vm-tests/debian)
  linux-image-amd64 busybox-static kmod open-iscsi e2fsprogs util-linux sg3-utils
  qemu-system-x86 socat cpio
  # the daemon itself in a QEMU guest on md RAID1 + LVM (vm-tests/debian guest-target mode)
  mdadm lvm2 dmsetup udev
  # vm-tests/debian vanished_link: the target in a network namespace behind a veth pair
  iproute2
  # userspace peers: libiscsi's compliance suite and tools, QEMU's iscsi:// driver, tgt
  libiscsi-bin qemu-utils qemu-block-extra tgt
  # power-cut emulation (tests/peers/powercut-fs) and late loop devices
  fuse3 mount
  # parse the Nix files
  nix-bin
  # man pages: render them (man -l, groff), verify the installed systemd unit
  man-db groff-base systemd
  # the instruction-count guard (tests/perf-guard.sh)
  valgrind
  # shell script checks
  shellcheck
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "install-deps: cargo not found: install Rust >= 1.85 (rustup)" >&2; exit 1; }
echo "install-deps: all test dependencies present"
