#!/usr/bin/env bash
# fmslice: one minute out of a 60-minute capture, against editcap -A -B over
# the same (uncompressed, page-cached) capture, in the same run; then the same
# one-minute query over 15-, 30-, 60- and 240-minute stores (the time should
# stay flat as the store grows). Outputs are checked identical first.
# OLD=path/to/fmslice times another build in the same run (before/after).
# The run also times what bounds the slice: fmslice --version (the process
# starting), the slice written to /dev/null (start, read and decompress,
# no output) and cp of the answer (the output alone), over the previous
# output and to a new file.
# The 240-minute store needs about 11 GB (web) or 6 GB (imix) in the work
# directory; STORES="15 30 60" leaves it out.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PPS=${PPS:-667}          # packets per second of capture time
MIX=${MIX:-web}          # bench/gen -mix: web (default), imix or small (small packets; the issue's store had PPS=2222)
sfx=; [ "$MIX" = web ] || sfx=-$MIX
RUNS=${RUNS:-5}
STORES=${STORES:-15 30 60 240}
OLD=${OLD:-}
START=1767225600         # 2026-01-01T00:00:00Z
# fmslice as shipped (make build: its tags), and the tools that make stores.
make -s -C "$(dirname "$0")/.." build
(cd "$(dirname "$0")/.." && go build -o "$B/" ./bench/gen)
rd=$(ringdir 2200)
ring=$rd/fmcap-bench-ring
make_store() { # minutes
  local m=$1 in=$W/slice$sfx-$1m.pcap st=$W/slice$sfx-$1m.store
  # Only the 60-minute capture is read again (editcap); the others may be
  # deleted once their stores are made.
  [ -f "$in" ] || [ -d "$st" ] || "$B/gen" -o "$in" -n $(( m * 60 * PPS )) -duration "${m}m" -start $START -mix "$MIX"
  if [ ! -d "$st" ]; then
    rm -f "$ring"
    "$B/fmring" create --ring "$ring" --size 2GiB --consumer writer:lossless
    # The writer drains the ring while fminject fills it: a 240-minute
    # capture (7 GB) is larger than the ring.
    "$B/writer" --ring "$ring" --store "$st" --exit-on-close --chunk-size 128MiB --log-level warn &
    local wp=$!
    "$B/fminject" -q --ring "$ring" "$in"
    wait $wp
    rm -f "$ring"
  fi
}
from=$(( START + 30 * 60 )); to=$(( from + 60 ))
for m in $STORES; do make_store $m; done
in=$W/slice$sfx-60m.pcap
cat "$in" > /dev/null   # page-cache the input for editcap
"$B/fmslice" -q --store "$W/slice$sfx-60m.store" --from $from --to $to -w "$W/a.pcap"
editcap -A $from -B $to "$in" "$W/b.pcap"
if ! cmp -s <(tcpdump --time-stamp-precision=nano -tt -nn -x -r "$W/a.pcap" 2>/dev/null) <(tcpdump --time-stamp-precision=nano -tt -nn -x -r "$W/b.pcap" 2>/dev/null); then
  echo "fmslice and editcap disagree" >&2; exit 1
fi
echo "60-minute capture: $(stat -c %s "$in") bytes, $(( 60 * 60 * PPS )) packets; store $(du -sb "$W/slice$sfx-60m.store" | cut -f1) bytes; minute 30 holds $(tcpdump -nn -r "$W/a.pcap" 2>/dev/null | wc -l) packets"
# The floor under any extractor that writes its answer to a file: copying the
# answer itself (page-cached) over an existing file on the same filesystem,
# measured in the same run. editcap / floor bounds the ratio any tool can reach.
cp "$W/a.pcap" "$W/answer.pcap"
old=()
if [ -n "$OLD" ]; then
  "$OLD" -q --store "$W/slice$sfx-60m.store" --from $from --to $to -w "$W/o.pcap"
  cmp "$W/a.pcap" "$W/o.pcap"
  old=("$OLD -q --store $W/slice$sfx-60m.store --from $from --to $to -w $W/o.pcap")
fi
# The files just written (the outputs compared, the answer's copy, 60-120
# MB) are written back now, not during the first command's runs.
sync
# The last two commands write a file that does not exist (removed before
# each run, untimed): the answer as a new file, where the commands above
# write over the previous run's (cp empties it first: O_TRUNC frees its
# pages, much of cp's time; fmslice writes a new file in its place and
# removes the previous one on another core, tools/fmslice/outfile.go).
prep=()
for _ in 1 2 3 4 5 ${old:+6}; do prep+=(--prepare true); done
prep+=(--prepare "rm -f $W/an.pcap" --prepare "rm -f $W/cn.pcap")
hyperfine -N --style basic --warmup 2 --runs "$RUNS" --export-json "$W/slice.json" "${prep[@]}" \
  "$B/fmslice -q --store $W/slice$sfx-60m.store --from $from --to $to -w $W/a.pcap" \
  "editcap -A $from -B $to $in $W/b.pcap" \
  "cp $W/answer.pcap $W/c.pcap" \
  "$B/fmslice -q --store $W/slice$sfx-60m.store --from $from --to $to -w /dev/null" \
  "$B/fmslice --version" "${old[@]}" \
  "$B/fmslice -q --store $W/slice$sfx-60m.store --from $from --to $to -w $W/an.pcap" \
  "cp $W/answer.pcap $W/cn.pcap" 2>&1 | grep -E "Time|±|faster" || true
python3 - "$W/slice.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
f, e, c, n, v = (x["mean"] for x in r[:5])
print("fmslice %.4f s, editcap %.4f s, cp of the answer %.4f s (means): fmslice is %.1fx faster than editcap; the floor (cp) bounds any extractor at %.1fx; fmslice takes %.2fx the floor" % (f, e, c, e / f, e / c, f / c))
print("bounds: fmslice --version %.4f s (starting), fmslice -w /dev/null %.4f s (%.2fx the cp: starting, reading, decompressing)" % (v, n, n / c))
m = [x["median"] for x in r]
print("medians (a shared machine's outliers move means): fmslice %.4f s, cp %.4f s: %.2fx" % (m[0], m[2], m[0] / m[2]))
fn, cn = r[-2], r[-1]
print("to a new file: fmslice %.4f s, cp of the answer %.4f s: %.2fx (medians %.2fx); fmslice -w /dev/null is %.2fx this cp" % (fn["mean"], cn["mean"], fn["mean"] / cn["mean"], fn["median"] / cn["median"], n / cn["mean"]))
if len(r) > 7:
    o = r[5]["mean"]
    print("OLD fmslice %.4f s: %.2fx the cp (this build %.2fx); medians %.2fx (this build %.2fx)" % (o, o / c, f / c, m[5] / m[2], m[0] / m[2]))
PY
# A second pass, cp first: in the first, whichever command comes first
# ran slower (the machine still settling after the capture was made and
# read: in one run 28.8 ms for a slice that took 20.9 ms at the end of the
# script), so the ratio is given in both orders.
hyperfine -N --style none --warmup 2 --runs "$RUNS" --export-json "$W/slice2.json" \
  --prepare true --prepare true --prepare "rm -f $W/cn.pcap" --prepare "rm -f $W/an.pcap" \
  "cp $W/answer.pcap $W/c.pcap" \
  "$B/fmslice -q --store $W/slice$sfx-60m.store --from $from --to $to -w $W/a.pcap" \
  "cp $W/answer.pcap $W/cn.pcap" \
  "$B/fmslice -q --store $W/slice$sfx-60m.store --from $from --to $to -w $W/an.pcap" >/dev/null 2>&1
python3 - "$W/slice2.json" <<'PY'
import json, sys
m = [x["median"] for x in json.load(open(sys.argv[1]))["results"]]
print("second pass, cp first (medians): over the previous answer cp %.4f s, fmslice %.4f s: %.2fx; to a new file cp %.4f s, fmslice %.4f s: %.2fx" % (m[0], m[1], m[1] / m[0], m[2], m[3], m[3] / m[2]))
PY
rm -f "$W/answer.pcap" "$W/c.pcap" "$W/o.pcap" "$W/an.pcap" "$W/cn.pcap"
echo "the same one-minute query as the store grows:"
for m in $STORES; do
  f=$(( START + (m / 2) * 60 )); t=$(( f + 60 ))
  hyperfine -N --style none --runs "$RUNS" --export-json "$W/g.json" "$B/fmslice -q --store $W/slice$sfx-${m}m.store --from $f --to $t -w $W/a.pcap" >/dev/null 2>&1
  python3 -c "import json;r=json.load(open('$W/g.json'))['results'][0];print('  %2d-minute store (%s bytes): %.4f s ± %.4f' % ($m, '$(du -sb "$W/slice$sfx-${m}m.store" | cut -f1)', r['mean'], r['stddev']))"
done
