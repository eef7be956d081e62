#!/usr/bin/env bash
# fmslice timeline at scale: a store of N packets (bench/gen's web mix,
# FLOWS flows interleaved at random, spread over 60 minutes), written by the
# writer and indexed by indexer --rebuild. Checked first: the timeline's
# totals equal tcpdump -r's counts of the same hour (no filter, and the
# flow filters below). Then, in one hyperfine run: the timeline of the hour
# in 1-second buckets, without a filter and with two flow filters, and
# tcpdump --count -r over the page-cached pcap (the peer: what counting
# the packets without an index costs, before any bucketing). Prints each timeline's summary
# line (packets from the index, frames read).
# The page cache is not dropped (the machine may be shared): the pcap is
# read once before timing, and fincore says how much of it is cached.
# Usage: N=10000000 RUNS=5 [FLOWS=20000] bench/index-timeline.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${N:-10000000}
RUNS=${RUNS:-5}
FLOWS=${FLOWS:-20000}
go build -o "$B/" ./bench/gen ./cmd/indexer ./cmd/writer ./tools/fmring ./tools/fminject ./tools/fmslice
in=$W/tl-$N-f$FLOWS.pcap st=$W/tl-$N-f$FLOWS.store
[ -f "$in" ] || "$B/gen" -o "$in" -n "$N" -flows "$FLOWS" -duration 60m
if [ ! -d "$st/index" ]; then
  rm -rf "$st"
  ring=/dev/shm/fmcap-tl-bench-ring-$$
  "$B/fmring" create --ring "$ring" --size 1GiB --consumer writer:lossless >/dev/null
  "$B/writer" --ring "$ring" --store "$st" --exit-on-close --log-level warn --metrics "" &
  wp=$!
  "$B/fminject" -q --ring "$ring" "$in"
  wait $wp
  rm -f "$ring"
  "$B/indexer" --rebuild --store "$st" --log-level warn
fi
start=1767225600
from=$start to=$((start + 3600))
echo "== $N packets over 60 min: pcap $(stat -c %s "$in") bytes, store $(du -sb --exclude=index "$st" | cut -f1) bytes, index $(du -sb "$st/index" | cut -f1) bytes"
# Filters of 0.1-0.5 % on this mix (clients in 198.18.0.0/16, servers in
# 198.19.0-6.x).
f1="net 198.18.13.0/24 and udp" f2="(port 22 or port 6379) and net 198.18.7.0/24"
for f in "" "$f1" "$f2"; do
  got=$("$B/fmslice" timeline -q --json --store "$st" --from $from --to $to --step 1s $f | python3 -c 'import json,sys; print(json.load(sys.stdin)["packets"])')
  want=$(tcpdump --count -r "$in" ${f:-greater 0} 2>/dev/null | awk '{print $1}')
  [ "$got" = "$want" ] || { echo "DIFFERENT TOTAL for '$f': timeline $got, tcpdump $want"; exit 1; }
  echo "'${f:-no filter}': $got packets, tcpdump -r the same; $("$B/fmslice" timeline --store "$st" --from $from --to $to --step 1s $f 2>&1 >/dev/null)"
done
cat "$in" > /dev/null
echo "page cache: $(fincore -b -n -o RES,SIZE "$in" | awk '{printf "%.1f%% of the pcap", 100*$1/$2}')"
hyperfine -N --style basic --warmup 2 --runs "$RUNS" \
  "$B/fmslice timeline -q --json --store $st --from $from --to $to --step 1s" \
  "$B/fmslice timeline -q --json --store $st --from $from --to $to --step 1s '$f1'" \
  "$B/fmslice timeline -q --json --store $st --from $from --to $to --step 1s '$f2'" \
  "tcpdump --count -r $in" 2>/dev/null | grep -E 'Benchmark|Time|±|faster'
