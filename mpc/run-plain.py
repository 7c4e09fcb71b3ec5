#!/usr/bin/env python3
"""run-plain.py -- run an MPyC program with N local parties over plain TCP.

This is didmpc's reference launcher (stdlib only): the same programs that the
gateway tunnels are run here directly between processes on loopback, so
tests and benchmarks can compare results and timings.

    mpc/run-plain.py [options] PROGRAM [PROGRAM_ARGS...]

It picks N free TCP ports and starts, for i in 0..N-1,

    PY PROGRAM -P 127.0.0.1:p0 ... -P 127.0.0.1:p{N-1} -I i [--ssl] [-T t] PROGRAM_ARGS...

mpyc 0.11 reads its own options with argparse.parse_known_args() over the
whole command line when mpyc.runtime is imported and leaves only the rest in
sys.argv, so mpyc options and program options may be mixed in any order; the
launcher puts mpyc's first.  Program options must not be abbreviations of
mpyc's long options (e.g. --n is refused as ambiguous with --no-*).  Extra
mpyc options (--no-log, -L 64, ...) can simply be given among PROGRAM_ARGS.

Each party's stdout/stderr go to files; its "RESULT <json>" line is picked
from stdout.  Output on stdout: one line "party <i> RESULT <json>" per party,
then a final JSON line
  {"ok", "parties", "ssl", "threshold", "wall_s", "party_wall_s",
   "exit_codes", "results", "all_equal", "ports", "log_dir"}
Exit status 0 only if every party exited 0 with a RESULT line; 124 on timeout.
When a party fails, the others get a few seconds to finish, then are killed
(an MPyC party whose peer is gone usually waits forever).

--ssl needs .config/party_<i>.crt/.key and .config/mpyc_ca.crt under --cwd
(mpyc looks them up relative to its working directory); mpc/gen-certs.sh
makes them.  Without --python, $DIDMPC_MPYC_PYTHON is used, else the venv
from mpc/setup-venv.sh (created on first use).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GRACE_S = 5.0  # how long the other parties may go on after one failed


def free_ports(n):
    """Reserve n distinct free ports (bound together, then released)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(('', 0))  # mpyc listens on all interfaces, so probe those
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def default_python():
    env = os.environ.get('DIDMPC_MPYC_PYTHON')
    if env:
        return env
    out = subprocess.run([os.path.join(HERE, 'setup-venv.sh')], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1]


def tail(path, lines=15):
    try:
        with open(path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])
    except OSError:
        return ''


def main():
    ap = argparse.ArgumentParser(
        description='Run an MPyC program with N parties over plain TCP on 127.0.0.1.')
    ap.add_argument('--python', help='interpreter with mpyc (default: see module doc)')
    ap.add_argument('--parties', '-N', type=int, default=3, help='number of parties (default 3)')
    ap.add_argument('--ssl', action='store_true', help='pass --ssl (needs .config under --cwd)')
    ap.add_argument('--threshold', '-T', type=int, help='pass -T t to every party')
    ap.add_argument('--cwd', help='working directory of the parties (default: current)')
    ap.add_argument('--timeout', type=float, default=300.0, help='seconds (default 300)')
    ap.add_argument('--log-dir', help='keep party logs here (default: temporary, removed on success)')
    ap.add_argument('-v', '--verbose', action='store_true', help='print the commands to stderr')
    ap.add_argument('program', help='MPyC program (path relative to the current directory)')
    ap.add_argument('args', nargs=argparse.REMAINDER, help='arguments for the program')
    opt = ap.parse_args()

    n = opt.parties
    if n < 1:
        ap.error('--parties must be >= 1')
    program = os.path.abspath(opt.program)
    if not os.path.isfile(program):
        ap.error(f'no such program: {opt.program}')
    cwd = os.path.abspath(opt.cwd or os.getcwd())
    if opt.ssl and n > 1:
        needed = ['mpyc_ca.crt'] + [f'party_{i}.{e}' for i in range(n) for e in ('crt', 'key')]
        missing = [f for f in needed if not os.path.isfile(os.path.join(cwd, '.config', f))]
        if missing:
            sys.exit(f'run-plain: --ssl needs {", ".join(missing)} in {cwd}/.config '
                     f'(make them with: {HERE}/gen-certs.sh {cwd} {n})')
    python = opt.python or default_python()
    args = opt.args[1:] if opt.args[:1] == ['--'] else opt.args

    keep_logs = opt.log_dir is not None
    log_dir = os.path.abspath(opt.log_dir) if keep_logs else tempfile.mkdtemp(prefix='run-plain-')
    os.makedirs(log_dir, exist_ok=True)

    ports = free_ports(n)
    mpyc_opts = [a for p in ports for a in ('-P', f'127.0.0.1:{p}')]
    if opt.ssl:
        mpyc_opts.append('--ssl')
    if opt.threshold is not None:
        mpyc_opts += ['-T', str(opt.threshold)]
    env = dict(os.environ, PYTHONUNBUFFERED='1')

    procs, files, started, ended = [], [], [], [None] * n
    t0 = time.monotonic()
    for i in range(n):
        cmd = [python, program] + mpyc_opts + ['-I', str(i)] + args
        if opt.verbose:
            print('run-plain: ' + ' '.join(cmd), file=sys.stderr)
        out = open(os.path.join(log_dir, f'party{i}.out'), 'wb')
        err = open(os.path.join(log_dir, f'party{i}.err'), 'wb')
        files += [out, err]
        started.append(time.monotonic())
        procs.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                      stdout=out, stderr=err))

    deadline = t0 + opt.timeout
    timed_out = False
    while True:
        codes = [p.poll() for p in procs]  # poll every party, every time
        now = time.monotonic()
        if all(c is not None for c in codes):
            break
        for i, p in enumerate(procs):
            if ended[i] is None and p.returncode is not None:
                ended[i] = now
                if p.returncode != 0:
                    deadline = min(deadline, now + GRACE_S)
        if now > deadline:
            timed_out = now >= t0 + opt.timeout
            for p in procs:
                if p.poll() is None:
                    p.kill()
            for p in procs:
                p.wait()
            break
        time.sleep(0.01)
    now = time.monotonic()
    wall = now - t0
    ended = [e if e is not None else now for e in ended]
    for f in files:
        f.close()

    results, codes = [], [p.returncode for p in procs]
    for i in range(n):
        line = None
        with open(os.path.join(log_dir, f'party{i}.out'), errors='replace') as f:
            for ln in f:
                if ln.startswith('RESULT '):
                    line = ln[len('RESULT '):].strip()
        try:
            results.append(json.loads(line) if line is not None else None)
        except ValueError:
            results.append({'unparsable': line})
        if line is not None:
            print(f'party {i} RESULT {line}')

    ok = not timed_out and all(c == 0 for c in codes) and all(r is not None for r in results)
    if not ok:
        for i in range(n):
            if codes[i] != 0 or results[i] is None:
                print(f'run-plain: party {i} exit code {codes[i]}, '
                      f'result {"missing" if results[i] is None else "present"}; '
                      f'log tail:\n{tail(os.path.join(log_dir, f"party{i}.out"))}'
                      f'{tail(os.path.join(log_dir, f"party{i}.err"))}', file=sys.stderr)
        print(f'run-plain: logs kept in {log_dir}', file=sys.stderr)
    elif not keep_logs:
        for i in range(n):
            for ext in ('out', 'err'):
                os.remove(os.path.join(log_dir, f'party{i}.{ext}'))
        os.rmdir(log_dir)

    summary = {
        'ok': ok, 'parties': n, 'ssl': opt.ssl, 'threshold': opt.threshold,
        'wall_s': round(wall, 3),
        'party_wall_s': [round(e - s, 3) for s, e in zip(started, ended)],
        'exit_codes': codes, 'timed_out': timed_out,
        'all_equal': ok and all(r == results[0] for r in results),
        'results': results, 'ports': ports,
        'log_dir': log_dir if (keep_logs or not ok) else None,
    }
    print(json.dumps(summary, sort_keys=True, separators=(',', ':')))
    sys.exit(0 if ok else (124 if timed_out else 1))


if __name__ == '__main__':
    main()
