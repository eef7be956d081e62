#!/usr/bin/env bash
# The selective query at scale: stores of SIZES packets (IMIX mix from
# bench/gen, 20 000 flows interleaved at random, 200 000 packets/s of capture
# time), written by the writer with its defaults and indexed by
# indexer --rebuild. One host-and-port query (a TCP flow with about 0.005 %
# of the packets, spread over the whole range) against tcpdump -r with the
# same filter over the whole uncompressed pcap, page-cached (fincore shows
# how much), side by side in one hyperfine run, outputs checked identical
# first. For each size: packets matched, frames and bytes fmslice read.
# Needs about 1.6 × the largest pcap of disk (pcap + store) and RAM to cache
# the pcap: 50 M IMIX packets are 18.8 GB.
# FLOWS sets the concurrent flows (default 20 000): each flow, and so the
# query, holds about 1/FLOWS of the packets (100 000: 0.001 %).
# Usage: SIZES="12500000 25000000 50000000" RUNS=5 [FLOWS=20000] bench/index-big.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SIZES=${SIZES:-"12500000 25000000 50000000"}
RUNS=${RUNS:-5}
FLOWS=${FLOWS:-20000}
sfx=; [ "$FLOWS" = 20000 ] || sfx=-f$FLOWS
go build -o "$B/" ./bench/gen ./cmd/indexer ./cmd/writer ./tools/fmring ./tools/fminject ./tools/fmslice
largest=$(printf '%s\n' $SIZES | sort -n | tail -1)
store() { # packets
  local n=$1 in=$W/big-$1$sfx.pcap st=$W/big-$1$sfx.store
  [ -f "$in" ] || "$B/gen" -o "$in" -n "$n" -flows "$FLOWS" -duration "$(( n / 200000 / 60 + 1 ))m" -mix imix
  if [ ! -d "$st/index" ]; then
    rm -rf "$st"
    local rd; rd=$(ringdir 2200)
    local ring=$rd/fmcap-big-ring
    rm -f "$ring"
    "$B/fmring" create --ring "$ring" --size 2GiB --consumer writer:lossless >/dev/null
    "$B/writer" --ring "$ring" --store "$st" --exit-on-close --log-level warn --metrics "" &
    local wp=$!
    "$B/fminject" -q --ring "$ring" "$in"
    wait $wp
    rm -f "$ring"; ringrelease
    "$B/indexer" --rebuild --store "$st" --log-level warn
  fi
}
for n in $SIZES; do store "$n"; done
# The query: from the largest store's flow table, the first TCP flow with
# 0.001-0.01 % of the packets (gen gives every flow about 1/FLOWS of them).
pick=$("$B/fmslice" flows --store "$W/big-$largest$sfx.store" --by packets -n 0 --json | python3 -c '
import json,sys
n=int(sys.argv[1]); rows=json.load(sys.stdin)
for r in rows:
  if r["proto"]=="tcp" and n*0.00001 <= r["packets"] <= n*0.0001:
    print("host %s and port %d" % (r["a"], min(r["a_port"], r["b_port"]))); break
' "$largest")
echo "query: $pick"
for n in $SIZES; do
  in=$W/big-$n$sfx.pcap st=$W/big-$n$sfx.store
  "$B/fmslice" -q --store "$st" -w "$W/a.pcap" "$pick"
  tcpdump --time-stamp-precision=nano -r "$in" -w "$W/b.pcap" "$pick" 2>/dev/null
  cmp -s <(tail -c +25 "$W/a.pcap") <(tail -c +25 "$W/b.pcap") || { echo "DIFFERENT OUTPUT for $pick at $n packets"; exit 1; }
  m=$(tcpdump -r "$W/a.pcap" 2>/dev/null | wc -l)
  echo "== $n packets: pcap $(stat -c %s "$in") bytes, store $(du -sb --exclude=index "$st" | cut -f1) bytes, index $(du -sb "$st/index" | cut -f1) bytes; $m matches ($(echo "100 * $m / $n" | bc -l | cut -c1-7) %), identical to tcpdump's"
  "$B/fmslice" --store "$st" --explain -w /dev/null "$pick" 2>&1 | grep '^plan'
  # Room in the page cache for this pcap: drop what earlier sizes left.
  dropcache
  cat "$in" > /dev/null
  echo "page cache: $(fincore -b -n -o RES,SIZE "$in" | awk '{printf "%.1f%% of the pcap", 100*$1/$2}')"
  hyperfine -N --style basic --warmup 2 --runs "$RUNS" --export-json "$W/big-$n$sfx.json" \
    "$B/fmslice -q --store $st -w /dev/null '$pick'" \
    "tcpdump -r $in -w /dev/null '$pick'" 2>/dev/null | grep -E 'Time|±|faster'
  echo "page cache after: $(fincore -b -n -o RES,SIZE "$in" | awk '{printf "%.1f%% of the pcap", 100*$1/$2}')"
done
