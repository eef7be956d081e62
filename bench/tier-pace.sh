#!/usr/bin/env bash
# Does the upload keep pace with capture? (issue 15: "upload keeps pace
# with the writer at >= 1 GB/s of pcap input to the local S3 server").
# The ring is filled with a bench/gen pcap first; then, timed from the
# writer's start:
#  - alone: the writer storing it (pcap MB/s);
#  - with the tier: the writer and fmupload (following the store, polling
#    every 100 ms) at once: the writer's rate, and the rate at which the
#    whole capture was in the bucket (pcap bytes / time until STORE/uploaded
#    reached the last seq), in pcap MB/s and in store MB/s;
#  - the peer, in the same run: s3put (bench/s3put: multipart, 8 parts in
#    flight, no payload signing, no checksums) putting the same chunk files
#    into the same server, ring and writer idle: what this server takes
#    from a bare client on this machine, in store MB/s, and that rate in
#    pcap MB/s at the store's compression ratio;
#  - CPU seconds per GB of pcap of each process, and the bound they set:
#    2 cores / (writer alone + the cheaper client, s3put or fmupload, with
#    the server's CPU while serving it).
# versitygw: see s3server in lib.sh (S3FLAGS: its posix options). MIX,
# PAYLOAD: bench/gen's -mix and -payload (mixed, random, text). FMUPLOAD:
# another fmupload binary (a before/after comparison in one session);
# UPFLAGS: fmupload's flags; default --sign-payload=false (the server is on
# loopback, a path this machine owns: the CRC-32C guards the bytes, as an
# operator would set it for a trusted path; UPFLAGS= gives fmupload's own
# default, which signs every byte over plain HTTP).
# Usage: [N=2000000] [MIX=web] [PAYLOAD=text] [RUNS=3] [CHUNK=32MiB] [FMUPLOAD=bin] [UPFLAGS=...] [S3FLAGS=...] bench/tier-pace.sh
set -euo pipefail
shopt -s inherit_errexit # a failure inside $(run ...) ends the script too
. "$(dirname "$0")/lib.sh"
N=${N:-2000000}
MIX=${MIX:-web}
PAYLOAD=${PAYLOAD:-}
RUNS=${RUNS:-3}
FMUPLOAD=${FMUPLOAD:-$B/fmupload}
UPFLAGS=${UPFLAGS---sign-payload=false}
CHUNK=${CHUNK:-32MiB} # small against the input, so the last chunk's upload (after the writer ends) is a small part of the time
go build -o "$B/" ./cmd/writer ./cmd/fmupload ./tools/fmring ./tools/fminject ./tools/fmslice ./bench/gen ./bench/s3put
in=$W/pace-$MIX${PAYLOAD:+-$PAYLOAD}-$N.pcap
[ -f "$in" ] || "$B/gen" -o "$in" -n "$N" -mix "$MIX" ${PAYLOAD:+-payload "$PAYLOAD"} -duration 10m
bytes=$(stat -c %s "$in")
s3=$W/pace-s3
s3server "$s3"
aws --endpoint-url "$AWS_ENDPOINT_URL_S3" s3 mb s3://pace > /dev/null
# The ring holds the whole input (the writer starts once it is in).
ringgib=1 # a power of two (fmring's rule)
while [ $(( ringgib << 30 )) -lt $(( bytes * 12 / 10 )) ]; do ringgib=$(( ringgib * 2 )); done
rd=$(ringdir $(( ringgib * 1024 + 100 )))
ring=$rd/fmcap-bench-pace-ring
st=$W/pace-store
trap 'kill $S3PID 2>/dev/null; wait $S3PID 2>/dev/null; rm -f "$ring"; ringrelease' EXIT
echo "input: $in, $N packets ($MIX${PAYLOAD:+, $PAYLOAD payloads}), $bytes bytes; ring on $rd; $(nproc) cores"
echo "fmupload: $FMUPLOAD $UPFLAGS; versitygw posix ${S3FLAGS:-(defaults)}"
run() { # tier (0|1) run-number: prints "writer-MB/s [uploaded-MB/s store-MB/s]"
  rm -f "$ring"; rm -rf "$st"
  "$B/fmring" create --ring "$ring" --size "${ringgib}GiB" --consumer writer:lossless > /dev/null
  "$B/fminject" -q --ring "$ring" "$in"
  dropcache
  local t0 t1 t2 up=
  mkdir -p "$st" # before fmupload, which wants it there; the writer takes it as it is
  local c0 s0; c0=$(cpu_ticks); s0=$(pticks $S3PID)
  t0=$(now)
  /usr/bin/time -f "%U %S" -o "$W/pace-wtime" "$B/writer" --ring "$ring" --store "$st" --exit-on-close --chunk-size "$CHUNK" --log-level warn --metrics "" &
  local wp=$!
  if [ "$1" = 1 ]; then
    "$FMUPLOAD" --store "$st" --bucket pace --prefix "run$2" --node n1 --poll 100ms --metrics "" --log-level warn $UPFLAGS &
    up=$!
  fi
  wait $wp || { echo "the writer failed" >&2; exit 1; }
  t1=$(now)
  if [ -z "$up" ]; then
    echo "$t0 $t1 $(cpu_ticks) $c0 $(cat "$W/pace-wtime")" | awk -v b="$bytes" -v n="$(nproc)" '{printf "%.0f %.3f %.2f", b/($2-$1)/1e6, ($7+$8)/(b/1e9), ($3-$5)/($4-$6)*n}'
    return
  fi
  local last; last=$("$B/fmslice" info --json --store "$st" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["last_seq"]))')
  local deadline=$(( $(date +%s) + 1800 ))
  while :; do
    through=$(sed -n 's/^through //p' "$st/uploaded" 2>/dev/null || true)
    [ -n "$through" ] && [ "$through" -ge "$last" ] && break
    kill -0 $up 2>/dev/null || { echo "fmupload exited" >&2; exit 1; }
    [ "$(date +%s)" -lt $deadline ] || { echo "the upload did not end within 30 minutes" >&2; exit 1; }
    sleep 0.05
  done
  t2=$(now)
  local c1 s1 u1; c1=$(cpu_ticks); s1=$(pticks $S3PID); u1=$(pticks $up)
  kill $up; wait $up 2>/dev/null || true
  local sbytes; sbytes=$(du -sb --exclude uploaded --exclude index "$st" | cut -f1)
  echo "$t0 $t1 $t2" | awk -v b="$bytes" -v s="$sbytes" '{printf "%.0f %.0f %.0f", b/($2-$1)/1e6, b/($3-$1)/1e6, s/($3-$1)/1e6}'
  # CPU seconds per GB of pcap: writer, fmupload, the S3 server; the
  # machine's busy cores from the writer's start to the last upload.
  echo " $c0 $c1 $(cat "$W/pace-wtime") $((u1)) $((s1 - s0))" | awk -v b="$bytes" -v n="$(nproc)" -v hz="$(getconf CLK_TCK)" \
    '{g=b/1e9; printf " %.3f %.3f %.3f %.2f", ($5+$6)/g, $7/hz/g, $8/hz/g, ($3-$1)/($4-$2)*n}'
}
# peer DIR PREFIX: s3put of the store's chunks; prints "store-MB/s
# s3put-CPU-s server-CPU-s busy-cores".
peer() {
  local c0 s0; c0=$(cpu_ticks); s0=$(pticks $S3PID)
  local r; r=$(/usr/bin/time -f "%U %S" -o "$W/pace-ptime" "$B/s3put" -bucket pace -prefix "$2" "$1"/*.zst | awk '{print $(NF-1)}')
  local c1 s1; c1=$(cpu_ticks); s1=$(pticks $S3PID)
  echo "$r $(cat "$W/pace-ptime") $((s1 - s0)) $c0 $c1" | awk -v n="$(nproc)" -v hz="$(getconf CLK_TCK)" '{printf "%s %.3f %.3f %.2f", $1, $2+$3, $4/hz, ($7-$5)/($8-$6)*n}'
}
alone=() wt=() upl=() ust=() peer=() wcpu=() acpu=() ucpu=() scpu=() fcpu=() pcpu=() busy=()
for i in $(seq "$RUNS"); do
  r=$(run 0 "$i")
  read -r a wc b <<< "$r"
  alone+=("$a") wcpu+=("$wc"); busy+=("alone:$b")
  r=$(run 1 "$i") # not inside read's here-string, which would hide run's failure
  read -r w u s tw tu ts b <<< "$r"
  wt+=("$w") upl+=("$u") ust+=("$s") acpu+=("$tw") ucpu+=("$tu") scpu+=("$ts"); busy+=("tier:$b")
  fcpu+=("$(awk -v a="$tu" -v b="$ts" 'BEGIN {printf "%.3f", a+b}')")
  sync
  r=$(peer "$st" "peer$i")
  read -r p pc ps b <<< "$r"
  peer+=("$p") pcpu+=("$(awk -v a="$pc" -v b="$ps" -v s="$(du -sb --exclude uploaded --exclude index "$st" | cut -f1)" 'BEGIN {printf "%.3f", (a+b)/(s/1e9)}')"); busy+=("peer:$b")
done
sbytes=$(du -sb --exclude uploaded --exclude index "$st" | cut -f1)
ratio=$(awk -v b="$bytes" -v s="$sbytes" 'BEGIN {printf "%.3f", b/s}')
pm=$(median "${peer[@]}")
echo "store: $sbytes bytes of chunks, compression ratio $ratio"
echo "writer alone:                 $(median "${alone[@]}") MB/s of pcap (runs: ${alone[*]})"
echo "writer with fmupload:         $(median "${wt[@]}") MB/s of pcap (runs: ${wt[*]})"
echo "whole capture in the bucket:  $(median "${upl[@]}") MB/s of pcap, $(median "${ust[@]}") MB/s of store (runs: ${upl[*]} / ${ust[*]})"
echo "peer s3put (bare client):    $pm MB/s of store = $(awk -v p="$pm" -v r="$ratio" 'BEGIN {printf "%.0f", p*r}') MB/s of pcap at this ratio (runs: ${peer[*]})"
# What bounds the pace here: CPU time adds up. Storing a GB of pcap costs
# the writer W CPU-seconds (alone, the writer's own cost with no
# neighbour); putting the store's bytes for it into this server costs a
# client and the server together U, per GB of pcap: s3put's (its CPU and
# the server's while it ran, per store GB, divided by the ratio) or
# fmupload's (its CPU and the server's in the tier run), whichever is
# cheaper. Writer and upload on this machine's cores can go no faster
# than cores / (W + U) GB/s of pcap.
wm=$(median "${wcpu[@]}"); pcm=$(median "${pcpu[@]}"); fcm=$(median "${fcpu[@]}")
pgb=$(awk -v p="$pcm" -v r="$ratio" 'BEGIN {printf "%.3f", p/r}')
read -r um uwho <<< "$(awk -v p="$pgb" -v f="$fcm" 'BEGIN {if (f < p) print f, "fmupload"; else print p, "s3put"}')"
echo "CPU per GB of pcap:           writer alone $wm s (runs: ${wcpu[*]}); with the tier: writer ${acpu[*]}, fmupload ${ucpu[*]}, server ${scpu[*]}"
echo "upload, client + server:      s3put + server $pcm s per GB of store (runs: ${pcpu[*]}) = $pgb s per GB of pcap; fmupload + server $fcm s per GB of pcap (runs: ${fcpu[*]})"
echo "busy cores:                   ${busy[*]}"
echo "CPU bound for writer + upload on $(nproc) cores: $(nproc) / (writer alone $wm + $uwho and server $um) = $(awk -v w="$wm" -v u="$um" -v n="$(nproc)" 'BEGIN {printf "%.0f", n/(w+u)*1000}') MB/s of pcap"
