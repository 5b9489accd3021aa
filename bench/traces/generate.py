#!/usr/bin/python3
"""Writes a synthetic day of serverless invocations in the format of the Azure
Functions 2019 public dataset (invocations_per_function_md.anon.d01.csv,
function_durations_percentiles.anon.d01.csv, app_memory_percentiles.anon.d01.csv),
shaped after what "Serverless in the Wild" (Shahrad et al., USENIX ATC 2020)
reports of the real one:

- triggers: about half HTTP, a fifth timers, the rest queues, events,
  storage and orchestrations;
- invocation rates spread over eight orders of magnitude: most functions are
  invoked rarely (under once an hour for close to half), a few thousands of
  times a minute;
- timers fire on a fixed period (1 minute to a day); the others arrive as a
  Poisson process whose rate follows the day and, for some, comes in bursts;
- average durations log-normal (half under about a second, a long tail to
  minutes); apps' average allocated memory log-normal around 150 MB, nearly
  all under 400 MB.

Deterministic for a seed. Usage: generate.py [--functions N] [--seed S] OUT_DIR
"""

import argparse
import math
import os
import random

MINUTES = 1440
TRIGGERS = [("http", 0.50), ("timer", 0.20), ("queue", 0.15), ("event", 0.06),
            ("storage", 0.05), ("orchestration", 0.04)]
TIMER_PERIODS = [1, 2, 5, 10, 15, 20, 30, 60, 120, 240, 360, 720, 1440]


def pick(rng, weighted):
    x = rng.random() * sum(w for _, w in weighted)
    for value, weight in weighted:
        x -= weight
        if x < 0:
            return value
    return weighted[-1][0]


def a_hash(rng):
    return "%064x" % rng.getrandbits(256)


def poisson(rng, mean):
    if mean <= 0:
        return 0
    if mean > 50:  # normal approximation, plenty for a trace
        return max(0, int(round(rng.gauss(mean, math.sqrt(mean)))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def timer_counts(rng):
    period = rng.choice(TIMER_PERIODS)
    phase = rng.randrange(period)
    return [1 if (m - phase) % period == 0 else 0 for m in range(MINUTES)]


def event_counts(rng):
    # Daily invocations from 1 to ~10^5.2 (a few thousand a minute at a
    # burst's peak), skewed to the rare majority; the busy few.
    daily = 10 ** (rng.random() ** 1.6 * 5.2)
    peak_hour = rng.uniform(0, 24)
    diurnal = rng.uniform(0, 0.8)
    bursty = rng.random() < 0.35
    counts, burst = [], 0
    for m in range(MINUTES):
        shape = 1 + diurnal * math.cos((m / 60 - peak_hour) / 24 * 2 * math.pi)
        rate = daily / MINUTES * shape
        if bursty:
            if burst == 0 and rng.random() < 0.004:
                burst = rng.randint(3, 30)
            rate = rate * 12 if burst else rate * 0.3
            burst = max(0, burst - 1)
        counts.append(poisson(rng, rate))
    return counts


def duration_ms(rng):
    return min(600000.0, max(1.0, rng.lognormvariate(math.log(700), 2.0)))


def memory_mb(rng):
    return min(1500.0, max(20.0, rng.lognormvariate(math.log(150), 0.6)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--functions", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2019)
    parser.add_argument("out")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)

    functions, apps = [], []
    while len(functions) < args.functions:
        owner = a_hash(rng)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            app = a_hash(rng)
            apps.append((owner, app, memory_mb(rng)))
            for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 5])):
                if len(functions) == args.functions:
                    break
                trigger = pick(rng, TRIGGERS)
                counts = timer_counts(rng) if trigger == "timer" else event_counts(rng)
                functions.append((owner, app, a_hash(rng), trigger, counts, duration_ms(rng)))

    with open(os.path.join(args.out, "invocations_per_function_md.anon.d01.csv"), "w") as f:
        f.write("HashOwner,HashApp,HashFunction,Trigger," +
                ",".join(str(m) for m in range(1, MINUTES + 1)) + "\n")
        for owner, app, function, trigger, counts, _ in functions:
            f.write(",".join([owner, app, function, trigger] + [str(c) for c in counts]) + "\n")

    with open(os.path.join(args.out, "function_durations_percentiles.anon.d01.csv"), "w") as f:
        f.write("HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,"
                "percentile_Average_0,percentile_Average_1,percentile_Average_25,"
                "percentile_Average_50,percentile_Average_75,percentile_Average_99,"
                "percentile_Average_100\n")
        for owner, app, function, _, counts, average in functions:
            spread = [average * k for k in (0.2, 0.3, 0.7, 0.95, 1.2, 3.0, 4.0)]
            f.write(",".join([owner, app, function, "%.0f" % average, str(sum(counts)),
                              "%.0f" % spread[0], "%.0f" % spread[-1]] +
                             ["%.0f" % s for s in spread]) + "\n")

    used = {(owner, app) for owner, app, *_ in functions}
    with open(os.path.join(args.out, "app_memory_percentiles.anon.d01.csv"), "w") as f:
        f.write("HashOwner,HashApp,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1,"
                "AverageAllocatedMb_pct5,AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,"
                "AverageAllocatedMb_pct75,AverageAllocatedMb_pct95,AverageAllocatedMb_pct99,"
                "AverageAllocatedMb_pct100\n")
        for owner, app, mb in apps:
            if (owner, app) not in used:
                continue
            pcts = [mb * k for k in (0.6, 0.7, 0.85, 0.98, 1.1, 1.3, 1.4, 1.5)]
            f.write(",".join([owner, app, str(rng.randint(100, 5000)), "%.0f" % mb] +
                             ["%.0f" % p for p in pcts]) + "\n")


if __name__ == "__main__":
    main()
