#!/usr/bin/env bash
# Slices at 0.1-0.5 % selectivity (a /24 and a protocol; two ports and a
# /24) on the store bench/index-timeline.sh builds (N packets over 60
# minutes, FLOWS flows interleaved at random; run it first), against
# tcpdump -r of the page-cached pcap with the same filter, in one hyperfine
# run each, outputs checked identical first. Prints fmslice --explain's plan:
# groups kept, what the term lists alone would have kept, groups that held
# a match, frames read. "tcp" (most packets) checks the other end: not
# slower than tcpdump -r. FILTERS, separated by |, picks some.
# Usage: N=10000000 RUNS=5 [FLOWS=20000] [FILTERS="tcp"] bench/index-mid.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${N:-10000000}
RUNS=${RUNS:-5}
FLOWS=${FLOWS:-20000}
go build -o "$B/" ./tools/fmslice
in=$W/tl-$N-f$FLOWS.pcap st=$W/tl-$N-f$FLOWS.store
[ -d "$st/index" ] || { echo "no store $st: run bench/index-timeline.sh first"; exit 1; }
FILTERS=${FILTERS:-"net 198.18.13.0/24 and udp|(port 22 or port 6379) and net 198.18.7.0/24|tcp"}
IFS='|' read -r -a filters <<< "$FILTERS"
for f in "${filters[@]}"; do
  "$B/fmslice" -q --store "$st" -w "$W/a.pcap" "$f"
  tcpdump --time-stamp-precision=nano -r "$in" -w "$W/b.pcap" "$f" 2>/dev/null
  cmp -s <(tail -c +25 "$W/a.pcap") <(tail -c +25 "$W/b.pcap") || { echo "DIFFERENT OUTPUT for $f"; exit 1; }
  m=$(tcpdump --count -r "$W/a.pcap" 2>/dev/null | awk '{print $1}')
  echo "== '$f': $m matches ($(echo "100 * $m / $N" | bc -l | cut -c1-6) %), identical to tcpdump's"
  "$B/fmslice" --store "$st" --explain -w /dev/null "$f" 2>&1 | grep '^plan'
  cat "$in" > /dev/null
  echo "page cache: $(fincore -b -n -o RES,SIZE "$in" | awk '{printf "%.1f%% of the pcap", 100*$1/$2}')"
  hyperfine -N --style basic --warmup 1 --runs "$RUNS" \
    "$B/fmslice -q --store $st -w /dev/null '$f'" \
    "tcpdump -r $in -w /dev/null '$f'" 2>/dev/null | grep -E 'Time|±|faster'
  rm -f "$W/a.pcap" "$W/b.pcap"
done
