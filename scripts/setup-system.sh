#!/usr/bin/env bash
# Installs the system packages didmpc's demo (--demo), WAN lab (--lab) or test suite (--tests)
# needs, when missing (Debian/Ubuntu via apt-get; needs root for that). Prints what it does.
#   --demo : python3 with the venv module
#   --lab  : also nftables + iproute2 + ethtool (namespaces, NATs, offloads off), wireguard-go +
#            wireguard-tools (the WireGuard baseline), a TTF font for the plot (fonts-dejavu-core)
#   --tests: all of --lab (the emulator's accuracy test and scripts/lab.sh --quick run in CI),
#            openssl (MPyC --ssl certs), node + npm (the Digital Bazaar VC interop oracle, the
#            browser tests' wallet library), chromium + chromium-driver (the lobby page's
#            browser tests drive headless Chromium over WebDriver) and everything --cluster
#            installs (tests/mediator_cluster.rs, benches/mediator.rs)
#   --cluster: redis-server and haproxy, for a mediator cluster (mediator/cluster/): Redis holds
#            the queues, grants and routes; HAProxy spreads parties over the instances. Only the
#            binaries are used: the Debian services they come with are stopped and disabled
set -euo pipefail
mode="${1:---tests}"
case "$mode" in --demo|--lab|--tests|--cluster) ;; *) echo "usage: $0 [--demo|--lab|--tests|--cluster]" >&2; exit 2 ;; esac
need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ "$mode" = --lab ] || [ "$mode" = --tests ]; then
  export PATH="$PATH:/usr/sbin:/sbin"
  command -v nft >/dev/null || need+=(nftables)
  command -v ip >/dev/null || need+=(iproute2)
  command -v ethtool >/dev/null || need+=(ethtool)
  command -v sysctl >/dev/null || need+=(procps)
  command -v chrt >/dev/null || need+=(util-linux)
  command -v wireguard-go >/dev/null || need+=(wireguard-go)
  command -v wg >/dev/null && command -v wg-quick >/dev/null || need+=(wireguard-tools)
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
fi
cluster=()
if [ "$mode" = --tests ] || [ "$mode" = --cluster ]; then
  export PATH="$PATH:/usr/sbin:/sbin"
  command -v redis-server >/dev/null || cluster+=(redis-server)
  command -v haproxy >/dev/null || cluster+=(haproxy)
  need+=("${cluster[@]}")
fi
if [ "$mode" = --tests ]; then
  command -v openssl >/dev/null || need+=(openssl)
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
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
# The packages start system-wide services on their default ports; the cluster example and the
# tests start their own instances on ports they pick, so the system ones are switched off.
for svc in "${cluster[@]}"; do
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now "$svc" >&2 || true
  else
    $sudo service "$svc" stop >&2 2>/dev/null || true
  fi
done
