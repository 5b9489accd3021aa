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

run_suite unit "$build/tests/unit-tests"
run_suite sandbox "$build/tests/sandbox-tests"

line="$passed passed, $failed failed"
[[ $skipped -gt 0 ]] && line+=", $skipped skipped"
echo
echo "$line"
exit $status
