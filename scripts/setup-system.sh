#!/usr/bin/env bash
# Installs the system packages didmpc's demo (--demo) or test suite (--tests) needs, when
# missing (Debian/Ubuntu via apt-get; needs root for that). Prints what it does.
#   --demo : python3 with the venv module
#   --tests: also nftables + iproute2 (NAT lab in network namespaces), openssl (MPyC --ssl certs)
#            and node + npm (the Digital Bazaar VC interop oracle)
set -euo pipefail
mode="${1:---tests}"
need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ "$mode" = --tests ]; then
  command -v nft >/dev/null || need+=(nftables)
  command -v ip >/dev/null || need+=(iproute2)
  command -v openssl >/dev/null || need+=(openssl)
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing: ${need[*]}" >&2
if ! command -v apt-get >/dev/null; then
  echo "please install: ${need[*]} (no apt-get here)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >&2
