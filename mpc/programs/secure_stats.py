#!/usr/bin/env python3
"""secure_stats.py -- didmpc's demo MPyC program (written for this project).

Every party contributes a few private integers in 0..99 and all parties learn
joint statistics, computed with several MPyC secure types:

  secint (32 bit): sum, maximum (mpc.max), a comparison count (values >= 50)
                   and the sorted multiset of all values (mpc.sorted);
  secfxp (64 bit): sample mean and variance (mpc.statistics);
  secret santa:    a secret random derangement (mpyc.random) of
                   max(3, m) participants; the assignment itself is random, so
                   only deterministic facts about it are reported.

Inputs are a deterministic function of (--seed, round, pid) unless --values
gives this party's own list.  Everything printed in the RESULT line is
deterministic given the arguments and identical at every party, so tests can
compare parties with each other and a plain-TCP run with a tunnelled one.
Fixed-point results carry tiny probabilistic rounding errors; they are snapped
to the nearest multiple of 1/N (mean) and 1/(N(N-1)) (variance), N being the
total number of values, which removes that noise.

--rounds K starts and shuts down the MPyC runtime K times (fresh connections
each time) and the RESULT line lists the results of every round.

Usage (mpyc options such as -M/-P/-I/-T/--ssl may go anywhere):
  python secure_stats.py -M3 --rounds 2
  python secure_stats.py -P 127.0.0.1:p0 -P 127.0.0.1:p1 -I 1 --seed 7
Output: log lines from mpyc, then exactly one line  RESULT {json}
"""

import argparse
import json
import random

from mpyc.runtime import mpc  # parses and strips the mpyc options from sys.argv


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seed', type=int, default=1, help='seed for derived inputs (default 1)')
    p.add_argument('--values', type=lambda s: [int(v) for v in s.split(',') if v.strip()],
                   help='this party\'s own comma-separated integers (instead of derived ones)')
    p.add_argument('--count', type=int, default=5, help='number of derived inputs per party')
    p.add_argument('--rounds', type=int, default=1, help='runtime start/shutdown cycles')
    return p.parse_args()


def derived_inputs(seed, rnd, pid, count):
    """This party's private inputs: a pure function of (seed, round, pid)."""
    rng = random.Random(f'didmpc secure_stats {seed} {rnd} {pid}')
    return [rng.randrange(100) for _ in range(count)]


def snap(x, den):
    """Round float x to the nearest multiple of 1/den; return it as a float."""
    return round(round(x * den) / den, 6)


async def one_round(args, rnd):
    m, pid = len(mpc.parties), mpc.pid
    mine = args.values if args.values is not None else \
        derived_inputs(args.seed, rnd, pid, args.count)
    counts = await mpc.transfer(len(mine))  # how many values each party has is public
    N = sum(counts)

    secint = mpc.SecInt(32)
    secfxp = mpc.SecFxp(64)
    xs, fs = [], []
    for i in range(m):
        own = mine if i == pid else [0] * counts[i]  # placeholders at non-senders
        if counts[i]:
            xs += mpc.input([secint(v) for v in own], senders=i)
            fs += mpc.input([secfxp(v) for v in own], senders=i)

    total = mpc.sum(xs)
    largest = mpc.max(xs)
    n_ge_50 = mpc.sum([x >= 50 for x in xs])
    ordered = mpc.sorted(xs)
    mean = mpc.statistics.mean(fs)
    var = mpc.statistics.variance(fs) if N >= 2 else None

    n_santa = max(3, m)
    santa = mpc.random.random_derangement(secint, range(n_santa))

    total, largest, n_ge_50 = await mpc.output([total, largest, n_ge_50])
    ordered = await mpc.output(ordered)
    mean = await mpc.output(mean)
    var = await mpc.output(var) if var is not None else None
    santa = await mpc.output(santa)
    return {
        'round': rnd,
        'parties': m,
        'counts': counts,
        'sum': total,
        'max': largest,
        'count_ge_50': n_ge_50,
        'sorted': ordered,
        'sorted_ok': ordered == sorted(ordered) and len(ordered) == N,
        'mean': snap(mean, N),
        'mean_matches_sum': round(mean * N) == total,
        'variance': snap(var, N * (N - 1)) if var is not None else None,
        'santa_size': n_santa,
        'santa_is_permutation': sorted(santa) == list(range(n_santa)),
        'santa_is_derangement': all(santa[i] != i for i in range(n_santa)),
    }


def main():
    args = parse_args()
    results = []
    for rnd in range(args.rounds):
        mpc.run(mpc.start())
        results.append(mpc.run(one_round(args, rnd)))
        mpc.run(mpc.shutdown())
    out = {'program': 'secure_stats', 'seed': args.seed, 'rounds': results}
    print('RESULT ' + json.dumps(out, sort_keys=True, separators=(',', ':')), flush=True)


if __name__ == '__main__':
    main()
