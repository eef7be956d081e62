#!/usr/bin/env bash
# make demo's GWLB scene, as root, in network namespaces it creates and
# removes (addresses in 198.18.0.0/15 only):
#
#   fmgwC 198.18.0.2 ── fmgwG (gwlbsim: a GWLB stand-in, 198.18.1.1) ── fmgwA (fwd, port g0 at 198.18.1.2)
#                        └── fmgwS 198.18.2.2 (a web server)
#
# gwlbsim (bench/gwlbsim) wraps the client's and the server's packets in
# GENEVE with GWLB's options (endpoint id, attachment id, a flow cookie per
# connection) and sends them to fwd, the appliance, which captures the
# inner packets and returns each datagram. The capture is then shown by
# origin: fmslice's pcapng names the interface by the GWLB endpoint and
# comments each packet with its attachment and flow cookie, and
# --gwlb-endpoint selects by it. Output in demo-out/gwlb/.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/bin
out=$PWD/demo-out/gwlb
P=fmgw
C=${P}C G=${P}G A=${P}A S=${P}S
ring=/dev/shm/fmcap-demo-gwlb-ring
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in $C $G $A $S; do ip netns del "$n" 2>/dev/null || true; done
  rm -f "$ring"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup
rm -rf "$out"; mkdir -p "$out/www"
[ -x "$B/gwlbsim" ] || go build -o "$B/gwlbsim" ./bench/gwlbsim

step "GWLB scene: client C, the GWLB stand-in G, the appliance A (fwd), server S"
for n in $C $G $A $S; do ip netns add $n; ip -n $n link set lo up; done
ip -n $G link add vc type veth peer name vc netns $C
ip -n $G link add va mtu 9000 type veth peer name va mtu 9000 netns $A
ip -n $G link add vs type veth peer name vs netns $S
ip netns exec $A sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n $C addr add 198.18.0.2/24 dev vc; ip -n $G addr add 198.18.0.1/24 dev vc
ip -n $G addr add 198.18.1.1/24 dev va
ip -n $G addr add 198.18.2.1/24 dev vs; ip -n $S addr add 198.18.2.2/24 dev vs
for d in "$C vc" "$G vc" "$G va" "$A va" "$G vs" "$S vs"; do set -- $d; ip -n $1 link set $2 up; done
ip -n $C route add default via 198.18.0.1
ip -n $S route add default via 198.18.2.1
ip netns exec $G sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
echo "C 198.18.0.2 ── G [gwlbsim 198.18.1.1] ══GENEVE══ A [fwd g0 198.18.1.2]; G ── S 198.18.2.2"

step "configuration: fwd's port g0 as a GWLB appliance (rule 50), health check HTTP /healthz"
cat > "$out/fmcap.yaml" <<YAML
ring:
  path: $ring
  consumers: ["writer:lossless"]
fwd:
  backend: afpacket
  control: $out/fwd.sock
  metrics: ""
  ports:
    - name: g0
      device: va
      addresses: [198.18.1.2/24]
      gwlb:
        rule: 50
        health_check: {protocol: http, port: 80, path: /healthz}
writer:
  store: $out/store
YAML
cat "$out/fmcap.yaml"
$B/fwd --check-config "$out/fmcap.yaml"
$B/fmring create --config "$out/fmcap.yaml" --size 64MiB
$B/writer --config "$out/fmcap.yaml" --flush 200ms --log-level warn --metrics "" & pids+=($!)
ip netns exec $A $B/fwd --config "$out/fmcap.yaml" --log-level warn & pids+=($!)
for i in $(seq 50); do $B/fmctl --socket "$out/fwd.sock" stats >/dev/null 2>&1 && break; sleep 0.1; done

step "gwlbsim in G: C's and S's traffic goes through the appliance in GENEVE"
ip netns exec $G $B/gwlbsim --tun gwlb0 --local 198.18.1.1 --appliance 198.18.1.2 > "$out/gwlbsim.out" & pids+=($!)
for i in $(seq 100); do grep -q ready "$out/gwlbsim.out" 2>/dev/null && break; sleep 0.1; done
ip -n $G rule add iif vc lookup 100
ip -n $G rule add iif vs lookup 100
ip -n $G route add default dev gwlb0 table 100
ip netns exec $G curl -s -o /dev/null -w 'health check from G: %{http_code}\n' http://198.18.1.2/healthz || true

step "S serves a 5 MB file; C pings S and downloads it, through the appliance"
head -c 5000000 /dev/urandom > "$out/www/file.bin"
ip netns exec $S python3 -m http.server 8080 --bind 198.18.2.2 --directory "$out/www" >/dev/null 2>&1 & pids+=($!)
for i in $(seq 100); do [ -n "$(ip netns exec $S ss -Hltn 'sport = :8080')" ] && break; sleep 0.1; done
start=$(date +%s.%N)
ip netns exec $C ping -c 3 -i 0.2 198.18.2.2
ip netns exec $C curl -s -o "$out/download.bin" -w 'downloaded %{size_download} bytes\n' http://198.18.2.2:8080/file.bin
cmp "$out/www/file.bin" "$out/download.bin" && echo "the download is identical to the file on S"
sleep 0.5
$B/fmctl --config "$out/fmcap.yaml" stats | grep -E 'gwlb|captured' || true

step "stop fwd and gwlbsim, then the writer (it drains the ring)"
kill "${pids[1]}" "${pids[2]}"; wait "${pids[1]}" "${pids[2]}" || true
kill "${pids[0]}"; wait "${pids[0]}" || true

step "the capture by origin: pcapng, one interface per GWLB endpoint, each packet's attachment and flow cookie"
$B/fmslice --config "$out/fmcap.yaml" --from "$start" --format pcapng -w "$out/gwlb.pcapng" 'icmp or (tcp port 8080 and tcp[tcpflags] & (tcp-syn|tcp-fin) != 0)'
tshark -r "$out/gwlb.pcapng" -T fields -E header=y -e frame.interface_name -e frame.packet_flags_direction -e ip.src -e ip.dst -e frame.comment 2>/dev/null |
  column -t -s $'\t' | cut -c1-200
step "fmslice --gwlb-endpoint 0123456789abcdef icmp (what came through that endpoint), as tcpdump shows it"
$B/fmslice --config "$out/fmcap.yaml" --from "$start" --gwlb-endpoint 0123456789abcdef icmp | tcpdump -nn -r - 2>/dev/null
echo "(the pcapng is $out/gwlb.pcapng)"
