#!/usr/bin/env bash
# The real pipeline, as root, in network namespaces it creates and removes
# (addresses in 198.18.0.0/15 only):
#
#   fmdemoA  198.18.1.2 ── [198.18.1.1  fwd  198.18.2.1] ── 198.18.2.2  fmdemoB
#                                 fmdemoF
#
# It creates the ring (fmring), starts the writer and fwd with the shipped
# configuration (systemd/fmcap.yaml, with this topology's devices), adds a
# rule at run time with fmctl, pings and downloads a file over HTTP from B
# through fwd, then extracts the HTTP transfer with fmslice and shows it
# with tcpdump, with fmctl stats. Everything is removed on exit, also when
# interrupted. The output stays in demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/bin
out=$PWD/demo-out
P=fmdemo
A=${P}A F=${P}F H=${P}B
ring=/dev/shm/fmcap-demo-ring
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in $A $F $H; do ip netns del "$n" 2>/dev/null || true; done
  rm -f "$ring"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup
rm -rf "$out"; mkdir -p "$out/www"

step "network namespaces: host A, fwd's namespace F, host B"
for n in $A $F $H; do ip netns add $n; ip -n $n link set lo up; done
ip link add ${P}a0 netns $A type veth peer name ${P}f0 netns $F
ip link add ${P}f1 netns $F type veth peer name ${P}b0 netns $H
ip netns exec $F sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n $A addr add 198.18.1.2/24 dev ${P}a0
ip -n $H addr add 198.18.2.2/24 dev ${P}b0
# Every device keeps the kernel's default offloads (TSO, checksum offload),
# as real hosts do: fwd takes the hosts' super-frames as they come.
for d in "$A ${P}a0" "$H ${P}b0" "$F ${P}f0" "$F ${P}f1"; do set -- $d; ip -n $1 link set $2 up; done
echo "A 198.18.1.2 ── ${P}f0 [fwd 198.18.1.1 | 198.18.2.1] ${P}f1 ── B 198.18.2.2"

step "configuration: systemd/fmcap.yaml with this topology's devices → $out/fmcap.yaml"
sed -e "s#/dev/hugepages/fmcap/ring#$ring#" -e "s#device: eth1#device: ${P}f0#" -e "s#device: eth2#device: ${P}f1#" \
    -e "s#/run/fmcap/fwd.sock#$out/fwd.sock#" -e "s#/var/lib/fmcap/store#$out/store#g" \
    -e "s#      gateway: 198.18.2.254.*##" systemd/fmcap.yaml > "$out/fmcap.yaml"
$B/fwd --check-config "$out/fmcap.yaml"

step "the ring, created on its own (fmring create --config)"
$B/fmring create --config "$out/fmcap.yaml" --size 256MiB
step "writer, indexer and fwd"
$B/writer --config "$out/fmcap.yaml" --flush 200ms --log-level warn & pids+=($!)
$B/indexer --config "$out/fmcap.yaml" --segment-age 1s --log-level warn & pids+=($!)
ip netns exec $F $B/fwd --config "$out/fmcap.yaml" --log-level warn & pids+=($!)
for i in $(seq 50); do $B/fmctl --socket "$out/fwd.sock" stats >/dev/null 2>&1 && break; sleep 0.1; done
echo "fwd is up with $(grep -c '^    - id:' "$out/fmcap.yaml" || true) rules"

step "a rule, added at run time: A → 198.18.1.1 goes to B from 198.18.2.1, captured inline (A ↔ B)"
$B/fmctl --socket "$out/fwd.sock" rules add --id 1 --in p0 --local 198.18.1.1 --peer 198.18.1.2 \
  --out p1 --out-local 198.18.2.1 --target 198.18.2.2 --mode inline
echo "(written back to $out/fmcap.yaml, comments kept)"

step "B serves a 20 MB file over HTTP; A pings 198.18.1.1 and downloads through fwd"
head -c 20000000 /dev/urandom > "$out/www/file.bin"
ip netns exec $H python3 -m http.server 8080 --bind 198.18.2.2 --directory "$out/www" >/dev/null 2>&1 & pids+=($!)
for i in $(seq 100); do # until it listens (a loaded machine takes its time)
  [ -n "$(ip netns exec $H ss -Hltn 'sport = :8080')" ] && break
  sleep 0.1
done
start=$(date +%s.%N)
ip netns exec $A ping -c 3 -i 0.2 198.18.1.1
ip netns exec $A curl -s -o "$out/download.bin" -w 'downloaded %{size_download} bytes at %{speed_download} B/s\n' http://198.18.1.1:8080/file.bin
cmp "$out/www/file.bin" "$out/download.bin" && echo "the download is identical to the file on B"
sleep 0.5

step "fmctl stats"
$B/fmctl --config "$out/fmcap.yaml" stats

step "stop fwd, then the writer and the indexer (they drain the ring: chunk finalized, last segment written)"
kill "${pids[2]}"; wait "${pids[2]}" || true
kill "${pids[0]}" "${pids[1]}"; wait "${pids[0]}" "${pids[1]}" || true
$B/fmring info --config "$out/fmcap.yaml"
ls -l "$out/store"

step "fmslice: the HTTP transfer since the start (tcp port 8080), as tcpdump shows it"
$B/fmslice --store "$out/store" --from "$start" -w "$out/http.pcap" tcp port 8080
tcpdump -nn -r "$out/http.pcap" 2>/dev/null | sed -n '1,8p'
echo "... $(tcpdump -nn -r "$out/http.pcap" 2>/dev/null | wc -l) packets, A ↔ B as captured inline"
step "fmslice: the pings (icmp), with the plan the index gave"
$B/fmslice --store "$out/store" --from "$start" --explain icmp | tcpdump -nn -r - 2>/dev/null
step "fmslice flows: the flows of the demo, from the index alone"
$B/fmslice flows --store "$out/store" -n 5
