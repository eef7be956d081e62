#!/usr/bin/env bash
# Regenerates the ns-*.pcap* captures in this directory from real Linux TCP/IP
# stacks in two network namespaces joined by a veth pair (run as root).
# Only addresses of the benchmarking ranges are used: 198.18.0.0/15 and
# 2001:2::/48. Nothing leaves the namespaces.
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
out=$(cd "$(dirname "$0")" && pwd)
A=fmcap-cap-a B=fmcap-cap-b
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del $A 2>/dev/null || true
  ip netns del $B 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add $A
ip netns add $B
ip link add va netns $A type veth peer name vb netns $B
for ns in $A $B; do ip -n $ns link set lo up; done
ip -n $A addr add 198.18.1.1/24 dev va
ip -n $B addr add 198.18.1.2/24 dev vb
ip -n $A -6 addr add 2001:2::1/64 dev va nodad
ip -n $B -6 addr add 2001:2::2/64 dev vb nodad
ip -n $A link set va up
ip -n $B link set vb up
head -c 200000 /dev/urandom >"$work/file.bin"
head -c 1000000 /dev/urandom >"$work/big.bin"
sleep 1

capture() { # ns iface file [tcpdump options]
  local ns=$1 ifc=$2 f=$3; shift 3
  ip netns exec "$ns" tcpdump -i "$ifc" -s 0 --immediate-mode -U -w "$f" "$@" 2>/dev/null &
  cap=$!
  sleep 1
}
stop() { sleep 1; kill -INT "$cap"; wait "$cap" || true; }

# 1. An HTTP download over TCP, microsecond pcap, offloads as Linux sets them
#    (so some frames are GSO-sized, larger than the MTU).
(cd "$work" && ip netns exec $B python3 -m http.server 8080 --bind 198.18.1.2 >/dev/null 2>&1) &
pids+=($!)
sleep 1
capture $B vb "$work/http.pcap"
ip netns exec $A curl -s -o /dev/null http://198.18.1.2:8080/file.bin
stop

# 2. ICMP echo, fragmented echo, IPv6 echo, UDP over v4 and v6, and 802.1Q
#    and QinQ tagged frames (this kernel has no VLAN devices, so a packet
#    socket sends them; B's stack ignores them): nanosecond pcap.
capture $B vb "$work/mix.pcap" --time-stamp-precision=nano
ip netns exec $A ping -c 3 -i 0.2 198.18.1.2 >/dev/null
ip netns exec $A ping -c 2 -i 0.2 -s 3000 198.18.1.2 >/dev/null
ip netns exec $A ping -6 -c 3 -i 0.2 2001:2::2 >/dev/null
ip netns exec $A python3 -c '
import socket
for fam, dst in ((socket.AF_INET, "198.18.1.2"), (socket.AF_INET6, "2001:2::2")):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    for i in range(5):
        s.sendto(b"fmcap udp %d " % i * (i + 1), (dst, 5353))
'
ip netns exec $A python3 -c '
import socket, struct
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("va", 0))
src = s.getsockname()[4]
for i, tags in enumerate(([(0x8100, 100)], [(0x88a8, 200), (0x8100, 100)], [(0x8100, 100)])):
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x77, i) + b"fmcap vlan" * 4
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 100 + i, 0, 64, 1, 0,
                     socket.inet_aton("198.18.100.1"), socket.inet_aton("198.18.100.2"))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    eth = b"\xff" * 6 + src
    for tpid, vid in tags:
        eth += struct.pack("!HH", tpid, vid)
    s.send(eth + struct.pack("!H", 0x0800) + ip + icmp)
'
stop

# 3. TCP over loopback inside a namespace: 64 KiB frames (lo MTU 65536).
(cd "$work" && ip netns exec $A python3 -m http.server 8081 --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)
sleep 1
capture $A lo "$work/lo.pcap"
ip netns exec $A curl -s -o /dev/null http://127.0.0.1:8081/big.bin
stop

# 4. pcapng from dumpcap: echo and a short HTTP exchange.
ip netns exec $B dumpcap -q -i vb -w "$work/dump.pcapng" 2>/dev/null &
cap=$!
sleep 1.5
ip netns exec $A ping -c 2 -i 0.2 198.18.1.2 >/dev/null
ip netns exec $A curl -s -o /dev/null http://198.18.1.2:8080/
stop

# 5. Timestamps that go backwards: capture 1's second half, then its first.
editcap -r "$work/http.pcap" "$work/h1.pcap" 1-60
editcap "$work/http.pcap" "$work/h2.pcap" 1-60
mergecap -a -F pcap -w "$work/unordered.pcap" "$work/h2.pcap" "$work/h1.pcap"

cp "$work/http.pcap" "$out/ns-http.pcap"
cp "$work/mix.pcap" "$out/ns-mix-nano.pcap"
cp "$work/lo.pcap" "$out/ns-lo-64k.pcap"
cp "$work/dump.pcapng" "$out/ns-dumpcap.pcapng"
cp "$work/unordered.pcap" "$out/ns-unordered.pcap"
ls -la "$out"
