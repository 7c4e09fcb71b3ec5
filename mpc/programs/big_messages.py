#!/usr/bin/env python3
"""big_messages.py -- throughput benchmark for didmpc (written for this project).

Few communication rounds with large messages: two private vectors of -n
secure 32-bit integers (x from party 0, y from the last party) are secret
shared, then multiplied elementwise (n multiplications in ONE round, so every
party sends n shares to every other party at once) and their inner product is
computed; finally the whole elementwise product is opened to everybody (again
n shares per message).  Roughly 9 bytes travel per element per message.

Vectors are derived from --seed, so every party can recompute the result in
the clear; the RESULT line carries checksums of the opened outputs and a
"check" flag telling whether the MPC result equals the plain computation.

Usage (mpyc options such as -M/-P/-I/--ssl may go anywhere):
  python big_messages.py -M3 -n 20000
Output: log lines from mpyc, then exactly one line  RESULT {json}
(--n is refused by mpyc's own option parser as ambiguous; use -n or --size.)
"""

import argparse
import json
import random

from mpyc.runtime import mpc

MOD = 2**61 - 1


def vectors(seed, n):
    rng = random.Random(f'didmpc big_messages {seed}')
    x = [rng.randrange(2**15) for _ in range(n)]
    y = [rng.randrange(2**15) for _ in range(n)]
    return x, y


def checksum(z):
    return sum((i + 1) * v for i, v in enumerate(z)) % MOD


async def compute(x, y):
    secint = mpc.SecInt(32)
    await mpc.start()
    m, pid = len(mpc.parties), mpc.pid
    sx = mpc.input([secint(v) for v in x] if pid == 0 else [secint(0)] * len(x), senders=0)
    sy = mpc.input([secint(v) for v in y] if pid == m - 1 else [secint(0)] * len(y),
                   senders=m - 1)
    prod = mpc.schur_prod(sx, sy)   # elementwise product: one round, n shares per message
    ip = mpc.in_prod(sx, sy)        # inner product: one round, a single share per message
    ip = await mpc.output(ip)
    prod = await mpc.output(prod)   # opening: n shares per message
    await mpc.shutdown()
    return prod, ip


def main():
    p = argparse.ArgumentParser(description='few MPC rounds with large messages')
    p.add_argument('-n', '--size', type=int, default=20000, help='vector length (default 20000)')
    p.add_argument('--seed', type=int, default=1)
    args = p.parse_args()
    x, y = vectors(args.seed, args.size)
    prod, ip = mpc.run(compute(x, y))
    want = [a * b for a, b in zip(x, y)]
    out = {
        'program': 'big_messages', 'parties': len(mpc.parties), 'size': args.size,
        'seed': args.seed, 'inner_product': ip, 'checksum': checksum(prod),
        'check': prod == want and ip == sum(want),
    }
    print('RESULT ' + json.dumps(out, sort_keys=True, separators=(',', ':')), flush=True)


if __name__ == '__main__':
    main()
