#!/usr/bin/env python3
"""many_rounds.py -- latency benchmark for didmpc (written for this project).

Many communication rounds with tiny messages: a chain of -n steps on 32-bit
secure integers where every step depends on the previous one, so nothing can
be batched.  Step k is a secure comparison followed by a secure
multiplication:

    b_k = acc >= t_k            (secure comparison, a few rounds)
    acc = acc + b_k * 2d_k - d_k (secure multiplication by a secret bit)

The start value of acc is the sum of one private input per party; t_k and d_k
are public values derived from --seed.  Each party's input is derived from
(--seed, pid), so every party can also recompute the chain in the clear; the
RESULT line carries the opened outputs, a checksum over all bits and a
"check" flag telling whether the MPC result equals that plain computation.

Usage (mpyc options such as -M/-P/-I/--ssl may go anywhere):
  python many_rounds.py -M3 -n 200
Output: log lines from mpyc, then exactly one line  RESULT {json}
(--n is refused by mpyc's own option parser as ambiguous; use -n or --steps.)
"""

import argparse
import json
import random

from mpyc.runtime import mpc


def plan(seed, m, steps):
    rng = random.Random(f'didmpc many_rounds {seed}')
    inputs = [rng.randrange(1000, 2000) for _ in range(m)]
    ts = [rng.randrange(500 * m, 2500 * m) for _ in range(steps)]
    ds = [rng.randrange(1, 100) for _ in range(steps)]
    return inputs, ts, ds


def checksum(bits):
    return sum((k + 1) * b for k, b in enumerate(bits)) % (2**31 - 1)


def in_the_clear(inputs, ts, ds):
    acc, bits = sum(inputs), []
    for t, d in zip(ts, ds):
        b = int(acc >= t)
        acc += b * 2 * d - d
        bits.append(b)
    return acc, bits


async def chain(inputs, ts, ds):
    secint = mpc.SecInt(32)
    await mpc.start()
    acc = mpc.sum(mpc.input(secint(inputs[mpc.pid])))
    bits = []
    for t, d in zip(ts, ds):
        b = acc >= t
        acc = acc + b * (2 * d) - d
        bits.append(b)  # step k+1 needs acc from step k: the rounds are sequential
    acc = await mpc.output(acc)
    bits = [int(b) for b in await mpc.output(bits)]
    await mpc.shutdown()
    return acc, bits


def main():
    p = argparse.ArgumentParser(description='many small sequential MPC rounds')
    p.add_argument('-n', '--steps', type=int, default=200, help='chain length (default 200)')
    p.add_argument('--seed', type=int, default=1)
    args = p.parse_args()
    inputs, ts, ds = plan(args.seed, len(mpc.parties), args.steps)
    acc, bits = mpc.run(chain(inputs, ts, ds))
    want_acc, want_bits = in_the_clear(inputs, ts, ds)
    out = {
        'program': 'many_rounds', 'parties': len(mpc.parties), 'steps': args.steps,
        'seed': args.seed, 'final': acc, 'ones': sum(bits), 'checksum': checksum(bits),
        'check': acc == want_acc and bits == want_bits,
    }
    print('RESULT ' + json.dumps(out, sort_keys=True, separators=(',', ':')), flush=True)


if __name__ == '__main__':
    main()
