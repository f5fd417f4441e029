# shellcheck shell=sh
# Target-guest helpers (busybox ash), sourced by the agent (agent.sh) and by every command the
# host runs in the target guest with `tg` (../guest-target.sh). The storage is real: an md
# RAID1 array of two virtio disks and an LVM volume on a third, named by the real udevd.
# Everything a function prints goes back to the host (host-events.log); the daemon logs to
# ttyS2 (through a FIFO), which is the host's target.log.

RAID_A=/dev/disk/by-id/virtio-raid-a
RAID_B=/dev/disk/by-id/virtio-raid-b
PV_DISK=/dev/disk/by-id/virtio-pv0
# The seed's path: the by-id link udev's 63-md-raid-arrays.rules makes from the array name.
RAID_LINK=/dev/disk/by-id/md-name-nas:iscsi
RAID_DEV=/dev/md/iscsi
RAID_KIB=32768            # per-member size given to mdadm, so the array is exactly 32 MiB
VG=vg0
LV=vm1
LV_PATH=/dev/$VG/$LV
LV_DM=$VG-$LV             # its device-mapper name
LV_MIB=64
DAEMON_PID_FILE=/run/rustiscsid.pid
DAEMON_CONFIG=/scenario/rustiscsid.toml
DAEMON_LOG=/run/rustiscsid.log
ARCHIVE=/srv/iscsi/archive.img   # the fileio backstore (LUN 2); its last 4 KiB: the mailbox
ARCHIVE_MIB=16

stamp() { echo "### [$(cut -d' ' -f1 /proc/uptime) s] $*"; }   # console lines with the uptime

# ---------------------------------------------------------------- boot
# target_boot: modules, the real udevd with a coldplug, the directories the tools expect.
target_boot() {
    mkdir -p /run/lock/lvm /run/rustiscsi /var/lib/rustiscsi /run/mdadm /srv/iscsi
    # The daemon's log goes through a FIFO to ttyS2 (the host's target.log): it sees no
    # terminal, so it logs plain text, and every restart appends to the same log.
    stty -F /dev/ttyS2 raw -echo 2>/dev/null
    mkfifo "$DAEMON_LOG"
    (while :; do cat "$DAEMON_LOG"; done > /dev/ttyS2 2>&1) &
    depmod -a || return 1
    for m in virtio_blk md_mod raid1 dm_mod; do modprobe "$m" || { echo "modprobe $m failed"; return 1; }; done
    /lib/systemd/systemd-udevd --daemon --resolve-names=never || return 1
    # Coldplug of the block devices only (the virtio disks; the rest needs no rules here).
    udevadm trigger --type=devices --action=add --subsystem-match=block
    udevadm settle --timeout=60 || return 1
    # Let a resync run at full speed even while the initiator writes (md throttles a resync
    # that competes with I/O down to speed_limit_min).
    echo 50000 > /proc/sys/dev/raid/speed_limit_min
    for d in "$RAID_A" "$RAID_B" "$PV_DISK"; do
        [ -b "$d" ] || { echo "missing $d (udev by-id link of a virtio disk)"; ls -l /dev/disk/by-id; return 1; }
    done
}

# ---------------------------------------------------------------- storage
# storage_create: the md RAID1 array named nas:iscsi and the LVM volume vg0/vm1, both
# checked through the links udev made for them.
storage_create() {
    mdadm --create "$RAID_DEV" --run --assume-clean --metadata=1.2 --level=1 --raid-devices=2 \
        --size="$RAID_KIB" --name=nas:iscsi "$RAID_A" "$RAID_B" || return 1
    pvcreate -y -q "$PV_DISK" && vgcreate -q "$VG" "$PV_DISK" &&
        lvcreate -y -q -L "${LV_MIB}M" -n "$LV" "$VG" || return 1
    udevadm settle --timeout=60
    storage_show
    [ -b "$RAID_LINK" ] || { echo "no $RAID_LINK"; ls -l /dev/disk/by-id; return 1; }
    [ -b "$LV_PATH" ] || { echo "no $LV_PATH"; return 1; }
    [ "$(blockdev --getsize64 "$RAID_LINK")" = $((RAID_KIB * 1024)) ] || { echo "array size"; return 1; }
}
storage_show() {
    cat /proc/mdstat
    ls -l /dev/disk/by-id/ "/dev/$VG" 2>&1
    lvs 2>&1
}
raid_md() { readlink -f "$RAID_LINK"; }    # /dev/mdNNN
# raid_state: the member status of the array in /proc/mdstat, e.g. [UU] or [U_].
raid_state() { grep -A1 "^$(basename "$(raid_md)") :" /proc/mdstat | sed -n 's/.*\(\[[U_]*\]\).*/\1/p'; }
raid_fail() { # MEMBER: mark it faulty and take it out of the array; the array runs degraded
    mdadm "$RAID_LINK" --fail "$1" && mdadm "$RAID_LINK" --remove "$1" || return 1
    cat /proc/mdstat
    [ "$(raid_state)" = "[U_]" ] || [ "$(raid_state)" = "[_U]" ]
}
# raid_add MEMBER: add it back; md rebuilds it (no write-intent bitmap: a full recovery of
# 32 MiB), held at 2 MB/s so that the initiator's I/O certainly runs during the rebuild.
raid_add() {
    echo 2000 > /proc/sys/dev/raid/speed_limit_min
    echo 2000 > /proc/sys/dev/raid/speed_limit_max
    mdadm --zero-superblock "$1" && mdadm "$RAID_LINK" --add "$1" || return 1
    sleep 1
    cat /proc/mdstat
    raid_rebuilding
}
raid_rebuilding() { grep -q "recovery" /proc/mdstat && grep "recovery" /proc/mdstat; }
# raid_wait_synced [SECS]: the rebuild at full speed, until the array is [UU] and idle.
raid_wait_synced() {
    echo 200000 > /proc/sys/dev/raid/speed_limit_max
    echo 50000 > /proc/sys/dev/raid/speed_limit_min
    i=0
    while [ $i -lt "${1:-150}" ]; do
        if [ "$(raid_state)" = "[UU]" ] && ! grep -q "recovery\|resync" /proc/mdstat; then
            cat /proc/mdstat; return 0
        fi
        sleep 1; i=$((i + 1))
    done
    cat /proc/mdstat; return 1
}
# raid_members_agree: both members hold the same 32 MiB of data (read at their data offset).
raid_members_agree() {
    a=$(member_sha "$RAID_A") && b=$(member_sha "$RAID_B") || return 1
    echo "member a: $a"; echo "member b: $b"
    [ "$a" = "$b" ]
}
member_sha() {
    off=$(mdadm --examine "$1" | sed -n 's/^ *Data Offset : \([0-9]*\) sectors.*/\1/p')
    [ -n "$off" ] || { echo "no data offset for $1" >&2; return 1; }
    dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip=$((off * 512)) count=$((RAID_KIB * 1024)) 2>/dev/null |
        sha256sum | cut -d' ' -f1
}
raid_stop() { # the array stopped: udev removes its by-id link
    mdadm --stop "$RAID_LINK" || return 1
    udevadm settle --timeout=30
    [ ! -e "$RAID_LINK" ] || { echo "$RAID_LINK still there"; return 1; }
    cat /proc/mdstat
}
# raid_assemble_late SECS: the array assembled SECS seconds after the daemon started.
raid_assemble_late() {
    now=$(cut -d. -f1 /proc/uptime) started=$(cut -d. -f1 /run/rustiscsid.started)
    [ $((started + $1)) -le "$now" ] || sleep $((started + $1 - now))
    echo "assembling $(($(cut -d. -f1 /proc/uptime) - started)) s after the daemon started"
    raid_assemble
}
raid_assemble() {
    mdadm --assemble "$RAID_DEV" "$RAID_A" "$RAID_B" || return 1
    udevadm settle --timeout=30
    [ -b "$RAID_LINK" ] || { echo "no $RAID_LINK after assembly"; return 1; }
    cat /proc/mdstat
}
lv_extend() { # MIB: the new size of the volume
    lvextend -q -L "${1}M" "$VG/$LV" || return 1
    udevadm settle --timeout=30
    [ "$(blockdev --getsize64 "$LV_PATH")" = $(($1 << 20)) ] || { echo "size after lvextend"; return 1; }
    lvs
}
# lv_error: the volume's table replaced by device-mapper's `error` target (every I/O fails
# with EIO), the old table kept in /run/lv.table for lv_restore.
lv_error() {
    dmsetup table "$LV_DM" > /run/lv.table || return 1
    cat /run/lv.table
    sectors=$(($(blockdev --getsize64 "$LV_PATH") / 512))
    dmsetup reload "$LV_DM" --table "0 $sectors error" && dmsetup resume "$LV_DM" || return 1
    dmsetup table "$LV_DM"
}
lv_restore() {
    dmsetup reload "$LV_DM" /run/lv.table && dmsetup resume "$LV_DM" || return 1
    dmsetup table "$LV_DM"
}
# put_pattern DEV FILE MIB: FILE written at MIB MiB of DEV (O_DIRECT), as a NAS admin might
# have left data on the array before the target ever ran.
put_pattern() {
    dd if="$2" of="$1" bs=1M seek="$3" oflag=direct conv=notrunc,fsync 2>/dev/null
}
# has_pattern DEV FILE MIB: DEV holds FILE at MIB MiB.
has_pattern() {
    n=$(($(stat -c %s "$2") >> 20))
    dd if="$1" bs=1M skip="$3" count="$n" iflag=direct 2>/dev/null | cmp - "$2"
}

# mailbox_put TEXT: TEXT (one line, zero-padded to 4 KiB) into the last 4 KiB of the archive
# LUN, where the initiator polls for it (host_do). The file is the daemon's own backstore.
mailbox_put() {
    [ -f "$ARCHIVE" ] || { echo "no $ARCHIVE (is the daemon running?)"; return 1; }
    printf '%s\n' "$1" | dd of="$ARCHIVE" bs=4096 seek=$((ARCHIVE_MIB * 256 - 1)) conv=notrunc,sync,fsync 2>/dev/null
}

# ---------------------------------------------------------------- the daemon
daemon_pid() { cat "$DAEMON_PID_FILE" 2>/dev/null; }
# alive PID: the process exists and is not a zombie (PID 1 of this initramfs reaps lazily).
alive() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
daemon_alive() { alive "$(daemon_pid)"; }
# listening: something listens on port 3260 (0x0CBC) in /proc/net/tcp.
listening() { grep -q '^ *[0-9]*: [0-9A-F]*:0CBC 00000000:0000 0A ' /proc/net/tcp; }
# daemon_start: rustiscsid in the background (own session), logging to ttyS2; ready when it
# listens on 3260. Prints its pid.
daemon_start() {
    ! daemon_alive || { echo "already running: $(daemon_pid)"; return 1; }
    RUST_LOG=${RUST_LOG:-info} setsid rustiscsid --config "$DAEMON_CONFIG" >>"$DAEMON_LOG" 2>&1 </dev/null &
    echo $! > "$DAEMON_PID_FILE"
    cut -d' ' -f1 /proc/uptime > /run/rustiscsid.started
    i=0
    while ! listening; do
        daemon_alive || { echo "rustiscsid exited during start-up (see target.log)"; return 1; }
        i=$((i + 1)); [ $i -gt 300 ] && { echo "rustiscsid not listening after 30 s"; return 1; }
        sleep 0.1
    done
    echo "rustiscsid pid $(daemon_pid) listening"
}
# daemon_stop: SIGTERM, up to 15 s, then SIGKILL.
daemon_stop() {
    daemon_alive || { rm -f "$DAEMON_PID_FILE"; return 0; }
    p=$(daemon_pid)
    kill -TERM "$p"
    i=0
    while alive "$p"; do
        i=$((i + 1))
        [ $i -gt 150 ] && { echo "rustiscsid ignored SIGTERM for 15 s: SIGKILL"; kill -KILL "$p"; sleep 0.5; break; }
        sleep 0.1
    done
    rm -f "$DAEMON_PID_FILE"
    ! listening || { sleep 1; ! listening; }
}
