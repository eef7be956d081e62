#!/usr/bin/env bash
# The index: (1) indexer throughput, live from the ring on one core, over
# the generated mix; (2) a selective host-and-port query with the index
# against tcpdump -r with the same filter over the whole uncompressed,
# page-cached capture, measured side by side (hyperfine), outputs checked
# identical first; bytes decompressed for three store sizes; index size
# against the compressed capture.
# BURST=N makes flows send trains of about N packets (bench/gen -burst);
# the default, 1, interleaves the 20 000 flows packet by packet at random
# (the indexer's worst case: every packet a different flow).
# OLD_INDEXER=path times another indexer binary (say, an earlier commit's)
# alternately with this one, on the same ring contents.
# FLOWS and MIX (web or imix) choose bench/gen's concurrent flows and mix.
# Usage: SIZES="1000000 2000000 4000000" RUNS=5 [IRUNS=3] [BURST=8] [FLOWS=N] [MIX=imix] [OLD_INDEXER=bin] bench/index.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SIZES=${SIZES:-"1000000 2000000 4000000"}
RUNS=${RUNS:-5}
IRUNS=${IRUNS:-3} # indexer runs (ring refilled for each)
BURST=${BURST:-1}
FLOWS=${FLOWS:-20000} # concurrent flows
MIX=${MIX:-web}       # bench/gen -mix: web or imix
sfx=; [ "$BURST" = 1 ] || sfx=-b$BURST
[ "$FLOWS" = 20000 ] || sfx=$sfx-f$FLOWS
[ "$MIX" = web ] || sfx=$sfx-$MIX
go build -o "$B/" ./bench/gen ./cmd/indexer ./cmd/writer ./tools/fmring ./tools/fminject ./tools/fmslice
for n in $SIZES; do
  in=$W/idx-$n$sfx.pcap st=$W/idx-$n$sfx.store
  [ -f "$in" ] || "$B/gen" -o "$in" -n "$n" -flows "$FLOWS" -duration "$(( n / 200000 ))m" -burst "$BURST" -mix "$MIX"
  size=$(( ( $(stat -c %s "$in") * 3 / 2 / 1048576 + 1 ) ))
  p2=1; while [ $p2 -lt $size ]; do p2=$(( p2 * 2 )); done
  ring=$(ringdir "$p2")/fmcap-idx-bench   # huge pages, as in production, when they can be had
  declare -A rates=()
  for i in $(seq "$IRUNS"); do
    for ix in ${OLD_INDEXER:-} "$B/indexer"; do # the peer (if any) and this one, alternated
      rm -rf "$st" "$ring"
      "$B/fmring" create --ring "$ring" --size ${p2}MiB --consumer writer:lossless --consumer indexer:lossy >/dev/null
      "$B/fminject" -q --ring "$ring" "$in"
      "$B/writer" --ring "$ring" --store "$st" --exit-on-close --chunk-size 256MiB --log-level warn --metrics ""
      # The indexer's heap comes from free memory, not from evicting the
      # page cache (a run's figure otherwise depends on what ran before).
      dropcache
      t0=$(now)
      taskset -c 1 "$ix" --ring "$ring" --store "$st" --exit-on-close --log-level warn --metrics ""
      t1=$(now)
      rates[$ix]+="$(echo "$n / ($t1 - $t0) / 1000000" | bc -l | cut -c1-5) "
    done
  done
  rm -f "$ring"; ringrelease
  for ix in ${OLD_INDEXER:-} "$B/indexer"; do
    r=(${rates[$ix]})
    echo "indexer $ix, $n packets: median $(median "${r[@]}") M packets/s (runs: ${r[*]}; one core, live from the ring on ${ring%/*})"
  done
  unset rates
  # A selective flow: the first with about 0.001-0.01 % of the packets.
  pick=$("$B/fmslice" flows --store "$st" --by packets -n 0 --json | python3 -c '
import json,sys
n=int(sys.argv[1]); rows=json.load(sys.stdin)
for r in rows:
  if r["proto"]=="tcp" and n*0.00001 <= r["packets"] <= n*0.0001:
    print("host %s and port %d" % (r["a"], r["a_port"] if r["a_port"]<r["b_port"] else r["b_port"])); break
' "$n")
  cat "$in" > /dev/null
  "$B/fmslice" -q --store "$st" -w "$W/a.pcap" "$pick"
  tcpdump --time-stamp-precision=nano -r "$in" -w "$W/b.pcap" "$pick" 2>/dev/null
  cmp -s <(tail -c +25 "$W/a.pcap") <(tail -c +25 "$W/b.pcap") || { echo "DIFFERENT OUTPUT for $pick"; exit 1; }
  echo "query \"$pick\": $(tcpdump -r "$W/a.pcap" 2>/dev/null | wc -l) packets of $n, identical to tcpdump's"
  "$B/fmslice" --store "$st" --explain -w /dev/null "$pick" 2>&1 | grep '^plan'
  hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$W/idx-$n.json" \
    "$B/fmslice -q --store $st -w /dev/null '$pick'" \
    "tcpdump -r $in -w /dev/null '$pick'" 2>/dev/null | grep -E 'Time|±|faster'
  idx=$(du -sb "$st/index" | cut -f1); all=$(du -sb --exclude=index "$st" | cut -f1)
  echo "index size $idx bytes, store $all bytes: $(echo "100 * $idx / $all" | bc -l | cut -c1-5) %"
done
