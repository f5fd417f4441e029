#!/usr/bin/env bash
# Write a random 64 MiB image to the target with QEMU's iscsi:// client, read it back and
# compare byte for byte: once with HeaderDigest=None, once with HeaderDigest=CRC32C (and
# check from libiscsi's login log that the digest was really negotiated).
#
# Usage: tests/peers/qemu-img-roundtrip.sh [--target rustiscsi|tgt] [--size 64M]
# Last line: "N passed, M failed". Exit 0 only if all cases pass.
#
# Pitfall: qemu-img 7.2 ignores "?header-digest=..." in an iscsi:// URL (and
# "?header_digest=" crashes it), so the digest cases use --image-opts with
# file.header-digest=none|crc32c.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/peers/lib.sh
. "$HERE/lib.sh"

target=rustiscsi
size=64M
while (($#)); do
    case $1 in
    --target) target=$2; shift ;;
    --size) size=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) peers_die "unknown argument: $1 (see --help)" ;;
    esac
    shift
done
[[ $target = rustiscsi || $target = tgt ]] || peers_die "--target must be rustiscsi or tgt"

peers_need_qemu_img
[[ $target = tgt ]] && peers_need_tgt
peers_init

# The LUN is twice the image so a short or misplaced write cannot hide.
bytes=$(numfmt --from=iec "$size")
peers_start "$target" t --size $((2 * bytes))
url=${PEER_URL[t]}
port=${PEER_PORT[t]} iqn=${PEER_IQN[t]} lun=${PEER_LUN[t]}

src=$PEERS_WORKDIR/src.img

pass=0 fail=0
# opts DIGEST: --image-opts string for the LUN with that header digest.
opts() {
    printf 'driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=%s:%s,file.target=%s,file.lun=%s,file.header-digest=%s,file.initiator-name=%s' \
        "$PEERS_HOST" "$port" "$iqn" "$lun" "$1" "$PEERS_IQN_BASE:qemu-img"
}

# run_case NAME DIGEST: DIGEST url (plain iscsi:// URL, qemu's default digest offer),
# none or crc32c (--image-opts).
run_case() {
    local name=$1 digest=$2 dst
    dst=$PEERS_WORKDIR/back-$name.img
    local log=$PEERS_WORKDIR/$name.log
    # Fresh random data per case, so data left by an earlier case cannot pass.
    head -c "$bytes" /dev/urandom >"$src"
    local ok=1
    local -a write
    if [[ $digest = url ]]; then
        write=(qemu-img convert -n -f raw -O raw "$src" "$url")
    else
        write=(qemu-img convert -n -f raw --target-image-opts "$src" "$(opts "$digest")")
    fi
    if ! LIBISCSI_DEBUG=10 timeout 120 "${write[@]}" >"$log" 2>&1; then
        ok=0
        peers_log "$name: write failed"
    fi
    # Read back exactly the image size (the LUN is larger).
    if ((ok)); then
        if [[ $digest = url ]]; then
            timeout 120 qemu-img dd -f raw -O raw bs=1M count=$((bytes / 1048576)) \
                "if=$url" "of=$dst" >>"$log" 2>&1 || ok=0
        else
            # qemu-img dd takes no --image-opts; read with convert into a file and cut.
            timeout 120 qemu-img convert --image-opts "$(opts "$digest")" -O raw "$dst.full" \
                >>"$log" 2>&1 && head -c "$bytes" "$dst.full" >"$dst" || ok=0
            rm -f "$dst.full"
        fi
        ((ok)) || peers_log "$name: read back failed"
    fi
    if ((ok)) && ! cmp -s "$src" "$dst"; then
        ok=0
        peers_log "$name: data read back differs: $(cmp "$src" "$dst" 2>&1 | head -n 1)"
    fi
    if ((ok)) && [[ $digest != url ]]; then
        local want=None
        [[ $digest = crc32c ]] && want=CRC32C
        if ! grep -q "TargetLoginReply: HeaderDigest=$want" "$log"; then
            ok=0
            peers_log "$name: target did not answer HeaderDigest=$want:" \
                "$(grep -o 'HeaderDigest=[A-Za-z0-9,]*' "$log" | sort -u | tr '\n' ' ')"
        fi
    fi
    rm -f "$dst"
    if ((ok)); then
        pass=$((pass + 1))
        echo "PASS $name"
    else
        fail=$((fail + 1))
        echo "FAIL $name (log: $log)"
        tail -n 5 "$log" >&2 || true
    fi
}

t0=$SECONDS
run_case url-default url
run_case digest-none none
run_case digest-crc32c crc32c
peers_log "done in $((SECONDS - t0))s"
((fail == 0)) || PEERS_KEEP=1
echo "$pass passed, $fail failed"
((fail == 0))
