# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# readonly_lun: a LUN mapped read_only shows Write Protect, an ext4 on it mounts read-only
# with its data intact, and writes fail: at the block layer, and (after `blockdev --setrw`
# lets them through) at the target with DATA PROTECT; the data stays unchanged.
SCENARIO_TARGETS="rustiscsi tgt"
SCENARIO_TIMEOUT=120

# The backing file is made here: an ext4 holding one random file whose checksum the guest
# checks (the daemon keeps an existing fileio file of the right size as it is).
scenario_setup() {
    mkdir -p "$WORK/seed"
    head -c 3145728 /dev/urandom > "$WORK/seed/payload"
    SEED_SUM=$(sha256sum "$WORK/seed/payload" | cut -d' ' -f1)
    truncate -s "$LUN_SIZE" "$WORK/disk0.img"
    mkfs.ext4 -q -F -d "$WORK/seed" "$WORK/disk0.img"
    IMG_SUM=$(sha256sum "$WORK/disk0.img" | cut -d' ' -f1)
    echo "$IMG_SUM" > "$WORK/disk0.img.sha256"
}

rustiscsi_config() {
    toml_acl_target 'mapped_luns = [{ lun = 0, read_only = true }]'
}

tgt_setup() {
    TGTADM --mode target --op new --tid 1 -T "$IQN"
    TGTADM --mode logicalunit --op new --tid 1 --lun 1 -b "$WORK/disk0.img"
    TGTADM --mode logicalunit --op update --tid 1 --lun 1 --params readonly=1
    TGTADM --mode target --op bind --tid 1 -I ALL
}

guest_env() { printf "SEED_SUM='%s'\n" "$SEED_SUM"; }

# After the run the image must be byte-identical (nothing was written).
host_event_final_check() { [[ $(sha256sum "$WORK/disk0.img" | cut -d' ' -f1) == "$(cat "$WORK/disk0.img.sha256")" ]]; }

guest_part() {
    cat <<'GUEST'
ro_flag_set() { [ "$(blockdev --getro "$1")" = 1 ]; }
mounted_ro() { grep -q "^$1 /mnt ext4 ro[,\ ]" /proc/mounts || { cat /proc/mounts; return 1; }; }
payload_ok() { [ "$(sha256sum /mnt/payload | cut -d' ' -f1)" = "$SEED_SUM" ]; }
guest_main() {
    need iscsid_start iscsi_start
    need discovery discover_lists
    need node_record node_new
    need login login
    need_disk disk_appears
    check write_protect ro_flag_set "$DEV"
    need mount_ro mount -t ext4 -o ro "$DEV" /mnt
    check mounted_read_only mounted_ro "$DEV"
    check payload_intact payload_ok
    check umount umount /mnt
    expect_fail rw_mount_refused ev "mount -t ext4 -o rw $DEV /mnt && ! grep -q '^$DEV /mnt ext4 ro' /proc/mounts"
    umount /mnt 2>/dev/null
    expect_fail blocklayer_write_fails raw_write_fails_inverted "$DEV"
    check setrw blockdev --setrw "$DEV"
    check target_refuses_write raw_write_fails "$DEV"
    check logout logout
    host_event final_check
}
# raw_write_fails succeeds when the write fails; this one fails when it fails.
raw_write_fails_inverted() { dd if=/dev/zero of="$1" bs=4K count=1 oflag=direct conv=notrunc,fsync; }
GUEST
}
