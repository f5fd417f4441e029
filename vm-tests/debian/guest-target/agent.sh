# shellcheck shell=sh
# /scenario/run.sh of the target guest (run by the base /init after it configured the network
# 10.0.2.15/24). Boots the storage stack (target_boot), runs the scenario's setup line
# (/scenario/setup), starts the daemon, says "READY <rc>" on ttyS1 (0: the daemon listens),
# then runs the host's commands from ttyS1 one at a time, each in a child shell with
# target-lib.sh loaded:
#   host -> guest   CMD <id> <timeout-secs> <base64 of a shell line>
#   guest -> host   OUT <id> <line>  (the command's output, up to 400 lines)   RC <id> <exit status>
# Command output also goes to the console (ttyS0 = the host's target-console.log).
# shellcheck source=target-lib.sh
. /scenario/target-lib.sh

# One descriptor for the whole run: a serial port closed by its last user drops the input
# that arrives before the next open (a command sent right after READY would be lost).
exec 3<>/dev/ttyS1
ctl() { echo "$*" >&3; }

stamp "boot"
(target_boot && stamp "storage stack up; setup: $(cat /scenario/setup)" && eval "$(cat /scenario/setup)" &&
    stamp "setup done" && daemon_start) 3>&-
rc=$?
stamp "ready, rc=$rc"
ctl "READY $rc"
while IFS= read -r line <&3; do
    # shellcheck disable=SC2086  # split the line into its four fields
    set -- $line
    if [ "${1:-}" != CMD ] || [ $# != 4 ]; then continue; fi
    id=$2 secs=$3
    cmd=$(echo "$4" | base64 -d)
    stamp "[$id] $cmd"
    # shellcheck disable=SC2016  # the child shell expands $1
    timeout "$secs" sh -c '. /scenario/target-lib.sh; eval "$1"' sh "$cmd" > "/tmp/cmd.out" 2>&1 < /dev/null 3>&-
    rc=$?
    cat /tmp/cmd.out
    echo "### [$id] rc=$rc"
    tail -n 400 /tmp/cmd.out | sed "s/^/OUT $id /" >&3
    ctl "RC $id $rc"
done
