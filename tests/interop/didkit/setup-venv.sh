#!/usr/bin/env bash
# The pinned venv of the Verifiable Credential interop oracle (PyPI didkit, SpruceID's
# Python binding), venv-didkit in the didmpc cache; prints its python path (see
# scripts/pinned-venv.sh).
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$HERE/../../../scripts/pinned-venv.sh" didkit "$HERE/requirements-didkit.txt" \
  'import didkit; didkit.get_version()'
