"""Test program: runs one tiny MPC step and prints, as its RESULT line, what MPyC runs
with (threshold, parties, TLS, PRSS) and the arguments the program itself received.
Used by tests/adversarial_host.rs to check that a host's program arguments never reach
MPyC's option parser."""

import json
import sys

from mpyc.runtime import mpc


async def main():
    await mpc.start()
    secint = mpc.SecInt(16)
    s = mpc.input(secint(mpc.pid + 1))
    total = await mpc.output(mpc.sum(s))
    await mpc.shutdown()
    out = {
        'threshold': mpc.threshold,
        'parties': len(mpc.parties),
        'ssl': bool(mpc.options.ssl),
        'no_prss': bool(mpc.options.no_prss),
        'argv': sys.argv[1:],
        'sum': int(total),
    }
    print('RESULT ' + json.dumps(out, sort_keys=True), flush=True)


if __name__ == '__main__':
    mpc.run(main())
