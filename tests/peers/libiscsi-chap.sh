#!/usr/bin/env bash
# libiscsi against rustiscsid with CHAP: the target has ACLs for libiscsi's two test
# initiators with mutual CHAP; libiscsi's tools and a few iscsi-test-cu tests log in with
# the credentials in the URL (libiscsi 1.19 speaks MD5 CHAP), and logins with a wrong
# secret, a wrong mutual secret, no credentials or an unknown initiator are refused.
#
# Usage: tests/peers/libiscsi-chap.sh
# Last line: "N passed, M failed".
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/peers/lib.sh
. "$HERE/lib.sh"

peers_need_pkgs libiscsi-bin
peers_init
peers_start rustiscsi c --size 64M --chap
port=${PEER_PORT[c]} iqn=${PEER_IQN[c]}
host=$PEERS_HOST
good="iscsi://$PEERS_CHAP_USER%$PEERS_CHAP_SECRET@$host:$port/$iqn/0"
mutual="?target_user=$PEERS_MUTUAL_USER&target_password=$PEERS_MUTUAL_SECRET"
ini=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test

pass=0 fail=0
check() {
    local name=$1 want=$2
    shift 2
    local rc=0
    timeout 60 "$@" >"$PEERS_WORKDIR/$name.log" 2>&1 || rc=$?
    if { [[ $want = ok ]] && ((rc == 0)); } || { [[ $want = refused ]] && ((rc != 0)); }; then
        printf '%-34s PASS\n' "$name"
        pass=$((pass + 1))
    else
        printf '%-34s FAIL (exit %s, wanted %s)\n' "$name" "$rc" "$want"
        tail -n 5 "$PEERS_WORKDIR/$name.log" | sed 's/^/    /'
        fail=$((fail + 1))
    fi
}

# mutual CHAP is configured, so an initiator that does not challenge the target is refused
check inq-one-way-when-mutual-set refused iscsi-inq -i "$ini" "$good"
check inq-mutual-chap ok iscsi-inq -i "$ini" "$good$mutual"
check inq-wrong-secret refused iscsi-inq -i "$ini" "iscsi://$PEERS_CHAP_USER%wrongsecret12@$host:$port/$iqn/0"
check inq-wrong-mutual-secret refused iscsi-inq -i "$ini" "$good?target_user=$PEERS_MUTUAL_USER&target_password=wrongsecret12"
check inq-no-credentials refused iscsi-inq -i "$ini" "iscsi://$host:$port/$iqn/0"
check inq-unknown-initiator refused iscsi-inq -i iqn.2026-11.org.example:stranger "$good"
check ls-discovery ok iscsi-ls -i "$ini" "iscsi://$PEERS_CHAP_USER%$PEERS_CHAP_SECRET@$host:$port"
for t in ALL.Inquiry.Standard ALL.ReadCapacity16.Simple ALL.Read10.Simple ALL.Write10.Simple \
    ALL.TestUnitReady.Simple ALL.CompareAndWrite.Simple; do
    check "cu-$t" ok iscsi-test-cu -d -t "$t" "$good$mutual"
    if grep -q "FAILED\|SKIPPED" "$PEERS_WORKDIR/cu-$t.log"; then
        printf '  (%s: FAILED or SKIPPED in output)\n' "$t"
        fail=$((fail + 1))
        pass=$((pass - 1))
    fi
done
echo "$pass passed, $fail failed"
((fail == 0))
