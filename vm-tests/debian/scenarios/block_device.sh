# shellcheck shell=bash
# shellcheck disable=SC2034  # SCENARIO_* are read by run.sh
# block_device: a block-device backstore next to a file LUN, as on a NAS (the NixOS test
# serves an md RAID1 array; this host kernel has no md driver, so a loop device with 4 KiB
# logical blocks stands in: the daemon reads its size and block size with BLKGETSIZE64 and
# BLKSSZGET). The guest sees LUN 0 with 4096-byte sectors and LUN 1 with 512, makes a file
# system on the block LUN, and the data is on the loop device's backing file afterwards.
SCENARIO_TARGETS="rustiscsi"
SCENARIO_TIMEOUT=150
LUN_SIZE=$((128 << 20))

scenario_setup() {
    command -v losetup >/dev/null || return 1
    truncate -s "$LUN_SIZE" "$WORK/block0.img"
    losetup -f --show --sector-size 4096 "$WORK/block0.img" > "$WORK/loopdev"
    echo "loop device: $(cat "$WORK/loopdev")"
    [[ $(blockdev --getss "$(cat "$WORK/loopdev")") == 4096 ]]
}
scenario_cleanup() { [[ -s $WORK/loopdev ]] && losetup -d "$(cat "$WORK/loopdev")"; }

rustiscsi_config() {
    toml_daemon
    toml_fileio file1 $((32 << 20))
    cat <<TOML

[backstores.block0]
kind = "block"
path = "$(cat "$WORK/loopdev")"

[targets."$IQN"]
luns = [{ lun = 0, backstore = "block0" }, { lun = 1, backstore = "file1" }]

[targets."$IQN".acls."$INITIATOR"]
TOML
}

# The file system the guest wrote is on the block device's backing file.
host_event_ext4_on_device() {
    sync
    [[ $(od -An -tx2 -j $((1024 + 56)) -N 2 "$WORK/block0.img" | tr -d ' ') == ef53 ]]
}

guest_part() {
    cat <<'GUEST'
guest_main() {
    need iscsid_start iscsi_start
    need node_record node_new
    need login login
    need_disk disk_appears 0
    BLK=$DEV
    check block_sector_4k ev "[ \"\$(blockdev --getss $BLK)\" = 4096 ]"
    check block_size ev "[ \"\$(blockdev --getsize64 $BLK)\" = $LUN_SIZE ]"
    check block_readcap ev "sg_readcap -l $BLK | grep -q 'Logical block length=4096 bytes'"
    need_disk file_disk 1
    FILE=$DEV
    check file_sector_512 ev "[ \"\$(blockdev --getss $FILE)\" = 512 ]"
    check file_raw_io raw_io "$FILE" $((32 << 20))
    check block_raw_io raw_io "$BLK" "$LUN_SIZE"
    need mkfs ev "mkfs.ext4 -q -F $BLK"
    mkdir -p /mnt/b
    need mount ev "mount $BLK /mnt/b"
    check write_files write_files /mnt/b
    check umount ev "umount /mnt/b"
    host_event ext4_on_device
    check remount_verify ev "mount $BLK /mnt/b && verify_files /mnt/b && umount /mnt/b"
    check logout logout
}
GUEST
}
