#!/usr/bin/env bash
# Runs every test binary, then prints one closing line "N passed, N failed"
# (", N skipped" when some were skipped) and exits non-zero on any failure.
set -uo pipefail
build=${1:-build}
passed=0 failed=0 skipped=0 status=0

run_suite() {
  local name=$1; shift
  local log
  log=$(mktemp)
  echo "== $name"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local p f s
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\{0,1\}\..*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\{0,1\}, listed below.*/\1/p' "$log" | tail -1)
  s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\{0,1\}, listed below.*/\1/p' "$log" | tail -1)
  rm -f "$log"
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  skipped=$((skipped + ${s:-0}))
  if [[ $rc -ne 0 ]]; then
    status=1
    # A crash leaves no summary: count the suite as one failure.
    [[ -z "$f" ]] && failed=$((failed + 1))
  fi
}

# Python's unittest: "Ran N tests" then "OK" or "FAILED (failures=F, errors=E)".
run_python_suite() {
  local name=$1; shift
  local log
  log=$(mktemp)
  echo "== $name"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local ran bad
  ran=$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\}.*/\1/p' "$log" | tail -1)
  bad=0
  for n in $(grep -o '\(failures\|errors\)=[0-9]*' "$log" | cut -d= -f2); do bad=$((bad + n)); done
  rm -f "$log"
  ran=${ran:-0}
  passed=$((passed + ran - bad))
  failed=$((failed + bad))
  if [[ $rc -ne 0 ]]; then
    status=1
    [[ $bad -eq 0 ]] && failed=$((failed + 1))
  fi
}

run_suite unit "$build/tests/unit-tests"
run_python_suite runtime-python /usr/bin/python3 -m unittest runtime/test_thatch_runtime.py
run_python_suite layers /usr/bin/python3 -m unittest tests/layers/test_check_layers.py
BUILD=$build run_python_suite tune-host /usr/bin/python3 -m unittest tests/host/test_tune_host.py
run_python_suite lambda-clients /usr/bin/python3 -m unittest tests/lambda/test_lambda_clients.py
run_python_suite metrics /usr/bin/python3 -m unittest tests/lambda/test_metrics.py
run_python_suite function-urls /usr/bin/python3 -m unittest tests/lambda/test_function_urls.py
run_python_suite redis-stream /usr/bin/python3 -m unittest tests/lambda/test_redis_stream.py
run_python_suite schedules /usr/bin/python3 -m unittest tests/lambda/test_schedules.py
run_suite supervisor "$build/tests/supervisor-tests"
run_suite api "$build/tests/api-tests"
run_suite security "$build/tests/security-tests"
run_suite fault "$build/tests/fault-tests"
run_suite sandbox "$build/tests/sandbox-tests"
run_suite runtime "$build/tests/runtime-tests"

# Each fuzz target (tests/fuzz) over its corpus, then a fixed number of
# mutations from a fixed seed: a target that crashes, leaks or throws what
# it must not fails. New inputs go to a scratch directory, not the corpus.
run_fuzz_target() {
  local target=$1 scratch
  scratch=$(mktemp -d)
  echo "== fuzz $target"
  if "$build-fuzz/$target-fuzz" -seed=1 -runs=5000 "$scratch" "tests/fuzz/corpus/$target" 2>&1 |
      grep -E "^(INFO: seed corpus|Done|==[0-9]+==|SUMMARY)"; [[ ${PIPESTATUS[0]} -eq 0 ]]; then
    passed=$((passed + 1))
  else
    echo "fuzz $target: FAILED"
    failed=$((failed + 1))
    status=1
  fi
  rm -rf "$scratch"
}
for target in config archive channel shared_answer rpc; do run_fuzz_target $target; done

# A minute of bench/soak (`make soak` runs ten): nothing lost, done twice or
# left behind.
echo "== soak (60 s)"
if "$build/bench/soak" 60 "$build/bench/soak-test"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  status=1
fi

line="$passed passed, $failed failed"
[[ $skipped -gt 0 ]] && line+=", $skipped skipped"
echo
echo "$line"
exit $status
