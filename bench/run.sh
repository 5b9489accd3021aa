#!/usr/bin/env bash
# make bench: figures as ratios against baselines measured in the same run
# (docs/performance.md says what each means, and the variables below).
# BENCH_ONLY="density,churn" runs only the parts named, of: one-shot, kill,
# cold-start, api, overload, tcp, http, density, churn, burst, replay, redis, schedule.
set -euo pipefail
build=${1:-build}
out=${BENCH_OUT:-$build/bench}
mkdir -p "$out"
runs=${BENCH_RUNS:-60}
run="$PWD/$build/bin/thatch-run"
probe_dir="$PWD/$build/tests"
parts=(one-shot kill cold-start api overload tcp http density churn burst replay redis schedule)
chosen=${BENCH_ONLY:-}
only=",${chosen// /,},"
for part in ${chosen//,/ }; do
  [[ " ${parts[*]} " == *" $part "* ]] || { echo "BENCH_ONLY: no part '$part' (${parts[*]})" >&2; exit 2; }
done
wanted() { [[ -z $chosen || $only == *",$1,"* ]]; }
failed=()
began=$SECONDS

if wanted one-shot; then
  echo "== cold one-shot start: python3 -c 'print(1)' ($runs runs each)"
  hyperfine -N --warmup 5 --runs "$runs" --export-json "$out/one-shot.json" \
    -n bare "/usr/bin/python3 -c 'print(1)'" \
    -n bwrap "bwrap --unshare-all --ro-bind /usr /usr --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --proc /proc --dev /dev --tmpfs /tmp /usr/bin/python3 -c 'print(1)'" \
    -n thatch-run "$run -- /usr/bin/python3 -c 'print(1)'" \
    -n thatch-run-true "$run --ro-bind $probe_dir:/probe -- /probe/thatch-probe true" \
    >/dev/null
  /usr/bin/python3 bench/report.py one-shot "$out/one-shot.json"
  echo
fi

if wanted kill; then
  echo "== kill precision: a spinning sandbox, from its deadline until it is gone"
  "$build/bench/kill-latency" "$probe_dir" "${BENCH_KILL_RUNS:-50}" || failed+=(kill)
  echo
fi

if wanted cold-start; then
  echo "== zygote cold start"
  "$build/bench/cold-start" "$PWD/$build/bin/thatch-zygote" "$PWD/examples" "${BENCH_COLD_RUNS:-200}" ||
    failed+=(cold-start)
  echo
fi

# api includes the overload point; overload alone measures only the points
# it is compared with.
if wanted api; then
  echo "== API: warm invocations through thatchd's socket, beside a no-op call to the same server"
  "$build/bench/api-bench" "${BENCH_API_SECONDS:-3}" || failed+=(api)
  echo
elif wanted overload; then
  echo "== overload: 64 clients on a function with the default pool settings"
  "$build/bench/api-bench" "${BENCH_API_SECONDS:-3}" --overload || failed+=(overload)
  echo
fi

if wanted tcp; then
  echo "== TCP with a token: a warm invoke over TCP ([[client]] login) beside the same over the socket"
  "$build/bench/api-bench" "${BENCH_API_SECONDS:-3}" --tcp || failed+=(tcp)
  echo
fi

if wanted http; then
  echo "== HTTP: warm Invokes over the Lambda HTTP API and requests to a function URL, beside Cap'n Proto invokes to the same thatchd"
  "$build/bench/http-bench" "${BENCH_API_SECONDS:-3}" || failed+=(http)
  echo
fi

# One process each: a part that fails (or gives up on a hung thatchd) does
# not take the next with it.
for part in density churn burst; do
  if wanted $part; then
    "$build/bench/scale-bench" $part || failed+=($part)
    echo
  fi
done

# Keep-alive policies on the synthetic sample day (bench/traces/README.md),
# with no host cap and with a 16 GiB one (docs/thatching.md's table).
if wanted replay; then
  echo "== keep-alive policies replayed on bench/traces/sample"
  trace=bench/traces/sample
  for memory in 1TiB 16GiB; do
    "$build/bin/thatch-replay" "$trace/invocations_per_function_md.anon.d01.csv" \
      --durations "$trace/function_durations_percentiles.anon.d01.csv" \
      --memory "$trace/app_memory_percentiles.anon.d01.csv" \
      --host-memory $memory --host-warm 100000 || failed+=(replay)
  done
  echo
fi

# A Redis stream mapping (docs/triggers.md): messages/s at batch size 10,
# and a restart while entries arrive (lost, delivered twice).
if wanted redis; then
  echo "== Redis stream mapping: a filled stream through a warm function, batch size 10"
  /usr/bin/python3 bench/redis_bench.py || failed+=(redis)
  echo
fi

# Real minutes: BENCH_SCHEDULES schedules due together each minute, the first
# minute to warm up, BENCH_SCHEDULE_MINUTES measured (bench/schedule_bench.py).
if wanted schedule; then
  /usr/bin/python3 bench/schedule_bench.py || failed+=(schedule)
  echo
fi

echo "make bench: $((SECONDS - began)) s"
if ((${#failed[@]})); then
  echo "make bench: FAILED: ${failed[*]} (see above)" >&2
  exit 1
fi
