#!/usr/bin/env bash
# The replay demo (make demo without root): the capture store end to end on
# a built-in sample, no root and no huge pages needed. Real captures (testdata/) go into a ring with fminject,
# the writer stores them as compressed chunks, fmslice extracts a time range
# and a filtered range, and tcpdump reads the result.
set -euo pipefail
cd "$(dirname "$0")/.."
B=bin
out=demo-out
rm -rf "$out"
mkdir -p "$out"
ring="$out/ring"
[ -d /dev/shm ] && [ -w /dev/shm ] && ring=$(mktemp -u /dev/shm/fmcap-demo-ring.XXXXXX)
trap 'rm -f "$ring"' EXIT
samples=(testdata/ns-mix-nano.pcap testdata/ns-http.pcap testdata/ns-dumpcap.pcapng)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "create a 64 MiB ring with a lossless writer and a lossy indexer slot"
$B/fmring create --ring "$ring" --size 64MiB --consumer writer:lossless --consumer indexer:lossy
step "inject the sample captures: ${samples[*]}"
$B/fminject --ring "$ring" "${samples[@]}"
$B/fmring info --ring "$ring"
step "store the ring as zstd pcap chunks (writer --exit-on-close)"
$B/writer --ring "$ring" --store "$out/store" --exit-on-close --log-level warn
ls -l "$out/store"
step "the stock tools read a chunk directly: zstd -dc CHUNK | tcpdump -r -"
zstd -dc "$out"/store/chunk-*.pcap.zst | tcpdump -nn -r - 2>/dev/null | sed -n 1,5p

# A sub-range: from the 10th to the 30th packet's time, taken from the sample.
first=$(tcpdump --time-stamp-precision=nano -tt -nn -r "${samples[0]}" 2>/dev/null | sed -n 10p | cut -d' ' -f1)
last=$(tcpdump --time-stamp-precision=nano -tt -nn -r "${samples[0]}" 2>/dev/null | sed -n 30p | cut -d' ' -f1)
step "slice [$first, $last) and show it with tcpdump"
$B/fmslice --store "$out/store" --from "$first" --to "$last" -w "$out/slice.pcap"
tcpdump -nn -r "$out/slice.pcap" 2>/dev/null
step "the same range, filtered: icmp or icmp6"
$B/fmslice --store "$out/store" --from "$first" --to "$last" icmp or icmp6 | tcpdump -nn -r - 2>/dev/null
step "everything to 198.18.1.2 port 8080, as pcapng"
$B/fmslice --store "$out/store" --format pcapng -w "$out/http.pcapng" dst host 198.18.1.2 and tcp port 8080
tcpdump -nn -r "$out/http.pcapng" 2>/dev/null | sed -n 1,3p
echo "…"
echo
echo "demo done: the store is in $out/store, the slices in $out/"
