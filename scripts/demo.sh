#!/usr/bin/env bash
# make demo: as root, the real pipeline (scripts/demo-live.sh: a forwarder
# between two network namespaces, traffic through it, the capture stored
# and sliced), then the GWLB scene (scripts/demo-gwlb.sh: fwd as a Gateway
# Load Balancer appliance, the capture shown by origin), with the live
# demo's store served by fmcapd in between (scripts/demo-fmcapd.sh); without root, the
# replay demo (scripts/demo-replay.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ] && ip netns list >/dev/null 2>&1; then
  scripts/demo-live.sh
  scripts/demo-fmcapd.sh
  exec scripts/demo-gwlb.sh
fi
echo "make demo: not root, so no network namespaces: running the replay demo instead" >&2
echo "(run make demo as root for the real pipeline: fwd between two namespaces, writer, fmslice)" >&2
exec scripts/demo-replay.sh
