"""Turns raw measurements into the figures thatch promises (see docs)."""

import json
import statistics
import sys


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


if __name__ == "__main__":
    if sys.argv[1] == "one-shot":
        one_shot(sys.argv[2])
