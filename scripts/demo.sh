#!/usr/bin/env bash
# The quick start (`make demo`): starts thatchd with the built-in defaults,
# a state directory and socket of its own, deploys examples/hello with the
# thatch CLI, invokes it cold and then warm, shows the timings and the
# daemon's statistics, and stops the daemon.
set -euo pipefail
build=${1:-build}
bin="$PWD/$build/bin"

# thatchd removes whatever it finds in its cgroup subtree when it starts:
# never next to a running one.
if pgrep -x thatchd >/dev/null; then
  echo "demo: a thatchd is already running on this host; stop it first" >&2
  exit 1
fi

# Sandboxes open their code with their own uid: the state directory must be
# searchable by everyone (it is 0711), and so must its parents.
demo=$(mktemp -d /tmp/thatch-demo.XXXXXX)
chmod 0711 "$demo"
export THATCH_SOCKET="$demo/thatchd.sock"
pid=
stop() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" || true
  fi
  rm -rf "$demo"
}
trap stop EXIT

echo "# thatchd --state-dir $demo/state --socket $THATCH_SOCKET"
"$bin/thatchd" --state-dir "$demo/state" --socket "$THATCH_SOCKET" 2>"$demo/thatchd.log" &
pid=$!
for _ in $(seq 100); do
  grep -q "thatchd: ready" "$demo/thatchd.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$demo/thatchd.log"; exit 1; }
  sleep 0.1
done
"$bin/thatch" ping >/dev/null

echo
echo "\$ thatch deploy hello examples/hello"
"$bin/thatch" deploy hello examples/hello

echo
echo "\$ thatch invoke hello --data '{\"name\": \"thatch\"}' --verbose     # cold: a new sandbox"
"$bin/thatch" invoke hello --data '{"name": "thatch"}' --verbose

echo
echo "\$ thatch invoke hello --verbose                                  # warm: the same sandbox"
"$bin/thatch" invoke hello --verbose

echo
echo "\$ thatch stats"
"$bin/thatch" stats

echo
echo "# stopping thatchd (SIGTERM: it drains, then stops every sandbox)"
kill -TERM "$pid"
wait "$pid"
pid=
grep -E "thatchd: (ready|Terminated|stopped)" "$demo/thatchd.log"
