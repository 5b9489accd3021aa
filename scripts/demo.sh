#!/usr/bin/env bash
# The quick start: runs examples/hello in a sandbox with thatch-run and shows
# what the sandbox sees. (thatchd, the daemon, arrives with the supervisor.)
set -euo pipefail
build=${1:-build}
run="$build/bin/thatch-run"

echo "# examples/hello/handler.py in a sandbox (256 MiB, 64 pids, 5 s):"
"$run" --code "$PWD/examples/hello" --memory 256M --pids 64 --timeout 5s \
  -- /usr/bin/python3 /var/task/handler.py

echo
echo "# what the sandbox sees:"
"$run" -- /bin/sh -c 'echo "uid=$(id -u) pid=$$ host=$(hostname)"; echo "processes: $(ls /proc | grep -c "^[0-9]")"; echo "root: $(ls / | tr "\n" " ")"; grep -E "^(CapEff|NoNewPrivs|Seccomp)" /proc/self/status'

echo
echo "# a limit breach is reported precisely:"
"$run" --timeout 500ms -- /usr/bin/python3 -c 'while True: pass' || echo "(exit status $?)"
