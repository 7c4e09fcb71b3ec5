"""didmpc's MPyC launcher: how the gateway starts an unmodified MPyC program.

The gateway runs `python -u - PROGRAM_NAME` and writes this file to the interpreter's
stdin; the launch itself comes in the environment variable DIDMPC_LAUNCH (JSON, removed
before the program runs; the environment is readable only by this user, unlike argv):

    {"program": "/abs/path/prog.py", "mpyc": ["-P", "127.0.0.1:4001", ..., "-I", "1",
     "-T", "1"], "args": ["--rounds", "2"]}

What it guarantees (specs/mpc-session.md, "The program contract"):
- MPyC parses ONLY the options the gateway built from the session descriptor (`mpyc`):
  `import mpyc.runtime` parses sys.argv once, so sys.argv holds just those options then.
  The host's program arguments (`args`) are put in sys.argv afterwards, for the program's
  own parser; they can never reach MPyC's option parser (a `-T 0` there is just an
  argument the program sees).
- Every listening socket the program opens (MPyC's own listener) is bound to 127.0.0.1,
  never to all interfaces, and accepts a connection only from a socket owned by this
  user (checked in /proc/net/tcp): another local user cannot pose as a peer.
- uvloop is disabled (MPYC_NOUVLOOP=1) so the asyncio hooks above apply.
"""

import asyncio
import asyncio.base_events
import json
import os
import runpy
import socket
import struct
import sys


def _hex_addr(host, port):
    if ':' in host:
        raw = socket.inet_pton(socket.AF_INET6, host)
        words = struct.unpack('<4I', raw)
        return ''.join('%08X' % w for w in words) + ':%04X' % port
    return '%08X:%04X' % (struct.unpack('<I', socket.inet_aton(host))[0], port)


def _owner(local, remote):
    """The uid of the socket whose local/remote addresses are these, or None."""
    want_local, want_remote = _hex_addr(*local[:2]), _hex_addr(*remote[:2])
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[1] == want_local and cols[2] == want_remote:
                        return int(cols[7])
        except OSError:
            continue
    return None


class _Guard(asyncio.Protocol):
    """Admits a connection only from a socket of this user, then hands it to MPyC."""

    def __init__(self, factory):
        self._factory = factory

    def connection_made(self, transport):
        peer = transport.get_extra_info('peername')
        own = transport.get_extra_info('sockname')
        if peer is None or own is None or _owner(peer, own) != os.getuid():
            print('didmpc launcher: refused a connection from %r (not this user)' % (peer,),
                  file=sys.stderr, flush=True)
            transport.abort()
            return
        proto = self._factory()
        transport.set_protocol(proto)
        proto.connection_made(transport)

    def connection_lost(self, exc):
        pass


_create_server = asyncio.base_events.BaseEventLoop.create_server


async def _loopback_server(self, protocol_factory, host=None, port=None, *args, **kwargs):
    if host in (None, '', '0.0.0.0', '::'):
        host = '127.0.0.1'
    return await _create_server(self, lambda: _Guard(protocol_factory), host, port, *args, **kwargs)


def main():
    try:
        launch = json.loads(os.environ.pop('DIDMPC_LAUNCH'))
        program, mpyc_options, args = launch['program'], list(launch['mpyc']), list(launch['args'])
    except (KeyError, ValueError, TypeError) as e:
        sys.exit('didmpc launcher: no valid DIDMPC_LAUNCH in the environment (%s)' % e)
    os.environ['MPYC_NOUVLOOP'] = '1'
    asyncio.base_events.BaseEventLoop.create_server = _loopback_server
    sys.argv = [program] + mpyc_options
    import mpyc.runtime  # noqa: F401  (parses the options above, once)
    if sys.argv[1:]:
        sys.exit('didmpc launcher: MPyC did not take these options: %r' % sys.argv[1:])
    sys.argv = [program] + args
    sys.path[0] = os.path.dirname(os.path.abspath(program))
    runpy.run_path(program, run_name='__main__')


main()
