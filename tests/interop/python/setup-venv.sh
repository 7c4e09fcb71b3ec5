#!/usr/bin/env bash
# The pinned venv of the didcomm-python interop oracle, venv-didcomm in the didmpc
# cache; prints its python path (see scripts/pinned-venv.sh).
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/../../../scripts/pinned-venv.sh" didcomm "$HERE/requirements-didcomm.txt" \
  'import didcomm, authlib.jose, pydid, websockets, httpx'
