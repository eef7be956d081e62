#!/usr/bin/env bash
# Installs the Debian packages fmcap needs, or says which are missing.
# Usage: scripts/deps.sh build|dpdk|test|demo|bench
set -euo pipefail
want=(libpcap-dev pkg-config gcc)           # build: cgo + libpcap for filters
case "${1:-build}" in
  build) ;;
  dpdk)  want+=(libdpdk-dev) ;;
  demo)  want+=(tcpdump zstd iproute2 ethtool iputils-ping curl python3 chromium) ;;  # chromium: the page's screenshot
  test)  want+=(tcpdump zstd tshark iproute2 procps iputils-ping ethtool libdpdk-dev systemd systemd-container debootstrap qemu-user-static chromium) ;;   # tshark brings editcap; qemu runs the arm64 tests (scripts/arm64-test.sh); chromium the page's browser test
  bench) want+=(tcpdump zstd tshark iproute2 procps time hyperfine iputils-ping ethtool libdpdk-dev iperf3 iptables) ;;
  *) echo "usage: $0 build|dpdk|test|demo|bench" >&2; exit 2 ;;
esac
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "fmcap needs these Debian packages: ${missing[*]}" >&2
  echo "run as root (make installs them with apt-get), or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Two runs at once (two make test) wait for each other's apt lock instead of failing.
lock=(-o DPkg::Lock::Timeout=600)
apt-get "${lock[@]}" update -qq
apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
