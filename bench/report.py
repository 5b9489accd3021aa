"""Turns raw measurements into the figures thatch promises (see docs)."""

import json
import statistics
import subprocess
import sys
import time


def one_shot(path):
    results = {r["command"]: r for r in json.load(open(path))["results"]}
    median = {name: statistics.median(r["times"]) * 1000 for name, r in results.items()}
    bare = median["bare"]
    print(f"{'command':<18}{'median ms':>10}{'overhead ms':>13}")
    for name, ms in median.items():
        print(f"{name:<18}{ms:>10.2f}{ms - bare:>13.2f}")
    bwrap_overhead = median["bwrap"] - bare
    thatch_overhead = median["thatch-run"] - bare
    ratio = thatch_overhead / bwrap_overhead if bwrap_overhead > 0 else float("inf")
    print(f"thatch-run overhead / bwrap overhead = {ratio:.2f} (target <= 1.00)")


def kill_precision(run, probe_dir, runs):
    late = []
    for _ in range(int(runs)):
        start = time.monotonic()
        proc = subprocess.run([run, "--timeout", "200ms", "--ro-bind", f"{probe_dir}:/probe", "--",
                               "/probe/thatch-probe", "spin"], capture_output=True)
        elapsed = time.monotonic() - start
        if proc.returncode != 124:
            sys.exit(f"unexpected exit {proc.returncode}: {proc.stderr.decode()}")
        late.append((elapsed - 0.200) * 1000)
    # The same process without a timeout: what starting and tearing down costs.
    base = []
    for _ in range(int(runs)):
        start = time.monotonic()
        subprocess.run([run, "--ro-bind", f"{probe_dir}:/probe", "--", "/probe/thatch-probe", "true"],
                       check=True)
        base.append((time.monotonic() - start) * 1000)
    late.sort()
    p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
    print(f"wall time past the 200 ms deadline: median {statistics.median(late):.2f} ms, "
          f"p99 {p99:.2f} ms (includes sandbox start/teardown)")
    print(f"start+teardown of the same sandbox without a deadline: median "
          f"{statistics.median(base):.2f} ms")
    print(f"kill latency estimate (median late - median start/teardown): "
          f"{statistics.median(late) - statistics.median(base):.2f} ms")


if __name__ == "__main__":
    if sys.argv[1] == "one-shot":
        one_shot(sys.argv[2])
    elif sys.argv[1] == "kill-precision":
        kill_precision(*sys.argv[2:5])
