#!/usr/bin/env bash
# Forwarding through the namespace topology, capture on, against the Linux
# kernel forwarding the same traffic with iptables DNAT/SNAT, in one run:
#
#   ns A  a0 198.18.1.2 ── f0 ┐ ns F ┌ f1 ── b0 198.18.2.2  ns B
#                            └──────┘
#   kernel:   f0 198.18.1.1, f1 198.18.2.1, ip_forward, DNAT 198.18.1.1 → B, SNAT → 198.18.2.1
#   fwd:      the same addresses owned by fwd (afpacket or dpdk on net_af_packet),
#             rule capture inline, ring on huge pages, writer (zstd) storing it
#
# iperf3 from A to 198.18.1.1: TCP, UDP with 64-byte and 1400-byte payloads
# (unlimited rate: the figure is what B receives). Every device keeps the
# kernel's default offloads (TSO, GSO, checksum offload; veth GRO off), as
# real hosts do; OFFLOADS=off turns tx checksumming off on the end hosts
# and GRO off on F's veths (the lab settings of earlier runs); FWDGRO=on
# turns GRO on on F's veths.
# CAPTURE=none runs fwd without capture and without the writer: the ceiling
# of the forwarding path itself (default: inline, the goal's condition).
# BACKENDS picks fwd's backends (default: afpacket dpdk).
# TCPRATES="1 2 4" adds, for fwd, TCP runs paced at each rate (Gbit/s) and
# the capture copies lost at that rate (fwd's capture drops, the ring's
# drops): the highest rate with none is what fwd captures and stores whole.
# FWD_BIN runs another fwd binary (an older build, as the peer of a change).
# SPIN sets fwd.spin (e.g. 50us; default 0s: fwd sleeps when idle).
# PIN=1 runs the iperf3 client on CPU 0 and the server on CPU 1 (taskset),
# on both paths alike: one TCP flow's rate otherwise swings with where the
# scheduler puts the two ends.
# TESTS picks the tests (default: tcp udp-64 udp-1400; udp-N is N-byte
# datagrams).
# STREAMS=N runs the TCP test as N parallel flows (iperf3 -P N): their sum
# swings less with where the scheduler puts each flow's two ends.
# FASTPATH sets fwd.fastpath (kernel: rules of capture none forwarded by
# fwd's tc program in the kernel; the socket path otherwise).
# ROUNDS=N alternates kernel and fwd N times. DPDK_VDEV_ARGS is appended
# to each net_af_packet vdev (e.g. ",framesz=...,blocksz=...").
# Usage: T=5 [ROUNDS=3] [STREAMS=4] [CAPTURE=none] [OFFLOADS=off] [FWDGRO=on] [BACKENDS=afpacket] bench/fwd-ns.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
T=${T:-5}
PINA= PINB=
if [ "${PIN:-0}" = 1 ]; then PINA="taskset -c 0" PINB="taskset -c 1"; fi
CAPTURE=${CAPTURE:-inline}
OFFLOADS=${OFFLOADS:-on}
FWDGRO=${FWDGRO:-off}
BACKENDS=${BACKENDS:-afpacket dpdk}
go build -o "$B/" ./cmd/fwd ./cmd/writer ./tools/fmring ./tools/fmctl
go build -tags dpdk -o "$B/fwd-dpdk" ./cmd/fwd
P=fmb$$
A=${P}A F=${P}F Bn=${P}B
cleanup() {
  [ -n "${FWDPID:-}" ] && kill "$FWDPID" 2>/dev/null || true
  [ -n "${WPID:-}" ] && kill "$WPID" 2>/dev/null || true
  for n in $A $F $Bn; do ip netns del "$n" 2>/dev/null || true; done
  rm -f "${RING:-/nonexistent}"
}
trap cleanup EXIT
for n in $A $F $Bn; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add ${P}a0 netns $A type veth peer name ${P}f0 netns $F
ip link add ${P}f1 netns $F type veth peer name ${P}b0 netns $Bn
ip netns exec $F sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n $A addr add 198.18.1.2/24 dev ${P}a0; ip -n $Bn addr add 198.18.2.2/24 dev ${P}b0
ip -n $A route add 198.18.2.0/24 via 198.18.1.1 2>/dev/null || true
if [ "$OFFLOADS" = off ]; then
  ip netns exec $A ethtool -K ${P}a0 tx off >/dev/null; ip netns exec $Bn ethtool -K ${P}b0 tx off >/dev/null
  ip netns exec $F ethtool -K ${P}f0 gro off >/dev/null; ip netns exec $F ethtool -K ${P}f1 gro off >/dev/null
fi
if [ "$FWDGRO" = on ]; then
  ip netns exec $F ethtool -K ${P}f0 gro on >/dev/null; ip netns exec $F ethtool -K ${P}f1 gro on >/dev/null
fi
echo "offloads $OFFLOADS, GRO on F's veths $FWDGRO, capture $CAPTURE"
for d in "$A ${P}a0" "$Bn ${P}b0" "$F ${P}f0" "$F ${P}f1"; do set -- $d; ip -n "$1" link set "$2" up; done

# fwd_ticks prints fwd's own CPU (user + system, in CLK_TCK ticks; 0 when
# no fwd runs): fwd's CPU per gigabyte forwarded is its cost, which load
# from elsewhere on the machine changes far less than its rate.
fwd_ticks() { if [ -n "${FWDPID:-}" ]; then awk '{print $14+$15}' /proc/$FWDPID/stat; else echo 0; fi; }
# retrans prints A's TCP segments retransmitted so far (its namespace's
# /proc/net/snmp): a path that loses or reorders segments shows there.
retrans() { ip netns exec $A awk '/^Tcp:/ { if (n++) print $13 }' /proc/net/snmp; }
iperf() { # label args...
  local label=$1; shift
  ip netns exec $Bn ${PINB:-} iperf3 -s -1 -B 198.18.2.2 >/dev/null 2>&1 &
  local s=$!; sleep 0.3
  local c0 f0 r0; c0=$(cpu_ticks); f0=$(fwd_ticks); r0=$(retrans)
  local j; j=$(ip netns exec $A ${PINA:-} iperf3 -c 198.18.1.1 -t "$T" --json "$@" 2>/dev/null || true)
  local c1 f1 r1; c1=$(cpu_ticks); f1=$(fwd_ticks); r1=$(retrans)
  wait $s 2>/dev/null || true
  echo "$j" | CPU="$c0 $c1" FWDCPU="$f0 $f1" RETRANS=$((r1 - r0)) NCPU=$(nproc) HZ=$(getconf CLK_TCK) python3 -c '
import json,os,sys
b0,t0,b1,t1=map(int,os.environ["CPU"].split()); busy=(b1-b0)/max(t1-t0,1)*int(os.environ["NCPU"])
f0,f1=map(int,os.environ["FWDCPU"].split())
j=json.load(sys.stdin); e=j["end"]
def fwdcost(nbytes): return ", fwd %.3f CPU s/GB" % ((f1-f0)/int(os.environ["HZ"])/(nbytes/1e9)) if f1>f0 and nbytes>0 else ""
if "sum_received" in e: print("%.3f Gbit/s, cpu %.2f of %s cores%s, %s segments retransmitted" % (e["sum_received"]["bits_per_second"]/1e9, busy, os.environ["NCPU"], fwdcost(e["sum_received"]["bytes"]), os.environ["RETRANS"]))
else:
  s=e["sum"]; got=s["packets"]-s["lost_packets"]
  print("%.3f Gbit/s received, %.3f Mpps (lost %.1f%%), cpu %.2f of %s cores%s" % (s["bits_per_second"]*(1-s["lost_percent"]/100)/1e9, got/s["seconds"]/1e6, s["lost_percent"], busy, os.environ["NCPU"], fwdcost(s["bytes"]*(1-s["lost_percent"]/100))))
' | sed "s/^/$label /"
}
suite() { # mode
  for t in ${TESTS:-tcp udp-64 udp-1400}; do
    case $t in
    tcp) iperf "$1 tcp" ${STREAMS:+-P "$STREAMS"} ;;
    udp-*) iperf "$1 $t" -u -b 0 -l "${t#udp-}" ;;
    esac
  done
}

# The kernel: addresses on F's veths, forwarding, DNAT/SNAT.
kernel_round() {
  ip -n $F addr add 198.18.1.1/24 dev ${P}f0; ip -n $F addr add 198.18.2.1/24 dev ${P}f1
  ip netns exec $F sysctl -qw net.ipv4.ip_forward=1
  ip netns exec $F iptables -t nat -A PREROUTING -s 198.18.1.2 -d 198.18.1.1 -j DNAT --to-destination 198.18.2.2
  ip netns exec $F iptables -t nat -A POSTROUTING -d 198.18.2.2 -j SNAT --to-source 198.18.2.1
  suite kernel
  ip netns exec $F iptables -t nat -F
  ip netns exec $F sysctl -qw net.ipv4.ip_forward=0
  ip -n $F addr flush dev ${P}f0; ip -n $F addr flush dev ${P}f1
  ip -n $A neigh flush all; ip -n $Bn neigh flush all
}

rd=$(ringdir 1100)
RING=$rd/fmcap-nsbench
fwd_round() { # backend
  local be=$1
  rm -f "$RING"; rm -rf "$W/ns-store"
  "$B/fmring" create --ring "$RING" --size 1GiB --consumer writer:lossless >/dev/null
  bin=${FWD_BIN:-$B/fwd}; devs=(${P}f0 ${P}f1)
  eal=""
  if [ $be = dpdk ]; then
    bin=$B/fwd-dpdk; devs=(net_af_packet0 net_af_packet1)
    eal="\"--no-huge\", \"-m\", \"512\", \"--no-pci\", \"-l\", \"1\", \"--file-prefix=$P\", \"--vdev=net_af_packet0,iface=${P}f0${DPDK_VDEV_ARGS:-}\", \"--vdev=net_af_packet1,iface=${P}f1${DPDK_VDEV_ARGS:-}\""
  fi
  cat > "$W/ns.yaml" <<EOF
ring:
  path: $RING
fwd:
  backend: $be
${SPIN:+  spin: $SPIN}
${FASTPATH:+  fastpath: $FASTPATH}
  control: $W/ns.sock
  dpdk:
    eal: [$eal]
  ports:
    - {name: p0, device: ${devs[0]}, addresses: [198.18.1.1/24]}
    - {name: p1, device: ${devs[1]}, addresses: [198.18.2.1/24]}
  rules:
    - {id: 1, in: p0, local: 198.18.1.1, peer: 198.18.1.2, out: p1, out_local: 198.18.2.1, target: 198.18.2.2, capture: $CAPTURE}
EOF
  if [ "$CAPTURE" != none ]; then "$B/writer" --ring "$RING" --store "$W/ns-store" --log-level warn & WPID=$!; fi
  ip netns exec $F "$bin" --config "$W/ns.yaml" --log-level warn 2>"$W/fwd.log" & FWDPID=$!
  sleep 2
  suite "fwd-$be"
  for r in ${TCPRATES:-}; do
    c0=$("$B/fmctl" --socket "$W/ns.sock" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["capture_drops"])')
    d0=$("$B/fmring" info --ring "$RING" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["Drops"])')
    iperf "fwd-$be tcp-paced-${r}G" -b "${r}G"
    c1=$("$B/fmctl" --socket "$W/ns.sock" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["capture_drops"])')
    d1=$("$B/fmring" info --ring "$RING" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["Drops"])')
    echo "fwd-$be tcp-paced-${r}G capture drops $((c1 - c0)), ring drops $((d1 - d0))"
  done
  "$B/fmctl" --socket "$W/ns.sock" stats | sed -n '1,4p' | sed "s/^/fwd-$be /"
  kill $FWDPID; wait $FWDPID 2>/dev/null || true; FWDPID=
  if [ -n "${WPID:-}" ]; then kill $WPID; wait $WPID 2>/dev/null || true; WPID=; fi
  ip -n $A neigh flush all; ip -n $Bn neigh flush all
}

# Kernel and fwd take turns, ROUNDS times, so that what else the shared
# machine does weighs on both alike; compare medians.
for round in $(seq "${ROUNDS:-1}"); do
  echo "round $round"
  kernel_round
  for be in $BACKENDS; do fwd_round "$be"; done
done
