#!/usr/bin/env bash
# make bench: figures as ratios against baselines measured in the same run.
set -euo pipefail
build=${1:-build}
out=${BENCH_OUT:-$build/bench}
mkdir -p "$out"
runs=${BENCH_RUNS:-60}
run="$PWD/$build/bin/thatch-run"
probe_dir="$PWD/$build/tests"

echo "== cold one-shot start: python3 -c 'print(1)' ($runs runs each)"
hyperfine -N --warmup 5 --runs "$runs" --export-json "$out/one-shot.json" \
  -n bare "/usr/bin/python3 -c 'print(1)'" \
  -n bwrap "bwrap --unshare-all --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --proc /proc --dev /dev --tmpfs /tmp /usr/bin/python3 -c 'print(1)'" \
  -n thatch-run "$run -- /usr/bin/python3 -c 'print(1)'" \
  -n thatch-run-true "$run --ro-bind $probe_dir:/probe -- /probe/thatch-probe true" \
  >/dev/null
/usr/bin/python3 bench/report.py one-shot "$out/one-shot.json"

echo
echo "== kill precision: a spinning sandbox, from its deadline until it is gone"
"$build/bench/kill-latency" "$probe_dir" "${BENCH_KILL_RUNS:-50}"

echo
echo "== zygote cold start"
"$build/bench/cold-start" "$PWD/$build/bin/thatch-zygote" "$PWD/examples" "${BENCH_COLD_RUNS:-200}"

echo
echo "== API: warm invocations through thatchd's socket, beside a no-op call to the same server"
"$build/bench/api-bench" "${BENCH_API_SECONDS:-3}"
