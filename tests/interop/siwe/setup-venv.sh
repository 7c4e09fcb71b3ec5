#!/usr/bin/env bash
# The pinned venv of the SIWE interop oracle (PyPI siwe + eth-account), venv-siwe in the
# didmpc cache; prints its python path (see scripts/pinned-venv.sh).
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/../../../scripts/pinned-venv.sh" siwe "$HERE/requirements-siwe.txt" \
  'import siwe, eth_account; siwe.SiweMessage'
