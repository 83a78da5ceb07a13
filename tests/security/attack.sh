# What a hostile job tries, as a member's ordinary user (each line says what it tried and
# whether it got through). $STATE, $SERVER_PID and $VICTIM are what an attacker could learn or
# guess: the server's state directory, its process and another member's job; $HOST_TMP is the
# machine's /tmp (device:inode).
try() { # try WHAT COMMAND...: ESCAPED if the command succeeds
  what=$1; shift
  if "$@" >/dev/null 2>&1; then echo "TRY $what: ESCAPED"; else echo "TRY $what: blocked"; fi
}
readable() { test -r "$1" && head -c1 "$1" >/dev/null; }
try "read the admin token next to the checkpoints" readable "$SUANLI_CHECKPOINT_DIR/../../admin-token"
try "read the admin token in the state dir" readable "$STATE/admin-token"
try "read the database" readable "$STATE/suanli.db"
try "read the secrets key" readable "$STATE/secret.key"
try "read another member's output" readable "$STATE/runs/$VICTIM/1/output.log"
try "read another member's run request" readable "$STATE/runs/$VICTIM/1/request.json"
try "read another member's checkpoint" readable "$STATE/checkpoints/$VICTIM/secret"
try "list the runs" ls "$STATE/runs"
try "find an admin token anywhere" sh -c 'find / -xdev -name admin-token 2>/dev/null | grep -q .'
try "read the server's environment" readable "/proc/$SERVER_PID/environ"
try "see the server's process" test -d "/proc/$SERVER_PID"
try "inherit the server's environment" sh -c 'env | grep -q SUANLI_CANARY'
try "hold a cluster token" sh -c 'env | grep -q -e RAY_AUTH_TOKEN -e SUANLI_RAY_TOKEN'
try "signal the server" kill -0 "$SERVER_PID"
trap '' TERM  # (the job's own processes get it too; this script carries on)
try "kill every process it can" sh -c 'kill -TERM -1 2>/dev/null; sleep 0.3; kill -0 "$SERVER_PID"'
try "write into the state dir" touch "$STATE/pwned"
try "write into /usr" touch /usr/pwned
try "write into /etc" touch /etc/pwned
try "write into the host's /tmp" sh -c 'test "$(stat -c %d:%i /tmp)" = "$HOST_TMP" && touch /tmp/pwned-$SUANLI_JOB_ID'
try "become root" sh -c 'test "$(id -u)" = 0'
try "read /etc/shadow" readable /etc/shadow
try "reach the Ray dashboard without a token" sh -c '[ -n "$RAY_DASHBOARD" ] && python -c "
import sys, urllib.request
r = urllib.request.urlopen(sys.argv[1] + \"/api/jobs/\", timeout=3)
sys.exit(0 if r.status == 200 else 1)" "$RAY_DASHBOARD"'
echo "attack done"
