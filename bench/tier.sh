#!/usr/bin/env bash
# The object-store tier against a local S3 server (versitygw, posix backend
# on this disk, loopback), in the same run as the local store:
#  - fmupload of a whole store (MB/s of store bytes);
#  - a one-minute slice from the bucket and from the disk (fmslice, same
#    store, outputs checked identical first), cold cache and warm cache;
#  - a selective query: the bytes fetched from the bucket against the
#    compressed bytes of the frames the query read (--explain).
# versitygw: see s3server in lib.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
MIN=${MIN:-15}           # minutes of capture
PPS=${PPS:-667}          # packets per second of capture time
RUNS=${RUNS:-5}
START=1767225600
go build -o "$B/" ./cmd/writer ./cmd/indexer ./cmd/fmupload ./tools/fmring ./tools/fminject ./tools/fmslice ./bench/gen
in=$W/tier-${MIN}m.pcap st=$W/tier-${MIN}m.store
[ -f "$in" ] || "$B/gen" -o "$in" -n $(( MIN * 60 * PPS )) -duration "${MIN}m" -start $START
if [ ! -d "$st" ]; then
  rd=$(ringdir 1200); ring=$rd/fmcap-bench-tier-ring; rm -f "$ring"
  "$B/fmring" create --ring "$ring" --size 1GiB --consumer writer:lossless --consumer indexer:lossy
  "$B/fminject" -q --ring "$ring" "$in"
  "$B/writer" --ring "$ring" --store "$st" --exit-on-close --chunk-size 128MiB --log-level warn --metrics ""
  "$B/indexer" --ring "$ring" --store "$st" --exit-on-close --log-level warn --metrics ""
  rm -f "$ring"
fi
s3=$W/tier-s3
s3server "$s3"
aws --endpoint-url "$AWS_ENDPOINT_URL_S3" s3 mb s3://bench > /dev/null
rm -f "$st/uploaded"
bytes=$(du -sb --exclude uploaded "$st" | cut -f1)
t0=$(date +%s.%N)
"$B/fmupload" --store "$st" --bucket bench --prefix fleet --node n1 --once --metrics "" --log-level warn
t1=$(date +%s.%N)
python3 -c "print('fmupload --once: %d bytes of store in %.2f s: %.0f MB/s' % ($bytes, $t1-$t0, $bytes/($t1-$t0)/1e6))"
rm -f "$st/uploaded"   # the store stays untiered for other benches
from=$(( START + MIN * 30 )); to=$(( from + 60 ))
remote=s3://bench/fleet/n1
"$B/fmslice" -q --store "$st" --from $from --to $to -w "$W/tier-a.pcap"
"$B/fmslice" -q --store "$remote" --cache "$s3/cache" --from $from --to $to -w "$W/tier-b.pcap"
cmp "$W/tier-a.pcap" "$W/tier-b.pcap" || { echo "local and bucket slices differ" >&2; exit 1; }
echo "one minute: $(stat -c %s "$W/tier-a.pcap") bytes of pcap"
hyperfine -N --style basic --runs "$RUNS" --export-json "$W/tier.json" \
  --prepare "rm -rf $s3/cold" \
  "$B/fmslice -q --store $remote --cache $s3/cold --from $from --to $to -w $W/tier-b.pcap" \
  "$B/fmslice -q --store $remote --cache $s3/cache --from $from --to $to -w $W/tier-b.pcap" \
  "$B/fmslice -q --store $st --from $from --to $to -w $W/tier-a.pcap" 2>&1 | grep -E "Time|±" || true
python3 - "$W/tier.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
c, w, l = (x["mean"] for x in r)
print("1-minute slice: bucket cold cache %.3f s, warm cache %.3f s, local %.3f s (means): %.1fx and %.1fx the local time" % (c, w, l, c / l, w / l))
PY
for f in "host 198.18.0.8" "tcp port 5432"; do
  "$B/fmslice" --store "$remote" --cache "$s3/sel" --explain -q -w "$W/tier-c.pcap" "$f" 2> "$W/tier-explain"
  rm -rf "$s3/sel"
  "$B/fmslice" --store "$st" --explain -q -w "$W/tier-d.pcap" "$f" 2> /dev/null
  cmp "$W/tier-c.pcap" "$W/tier-d.pcap"
  echo "selective '$f': $(grep -E 'frames read|range GETs' "$W/tier-explain" | tr '\n' ' ')"
done
