#!/usr/bin/env bash
# The GWLB appliance on DPDK without a kernel in the path: port 0, a gwlb
# port, is a ring pair (fwd's "ringpair:NAME" device: a receive rte_ring
# and a transmit rte_ring, benchmark only) that fwd --bench-gen fills with
# N GENEVE frames (GWLB's options around a 50-byte inner TCP packet: 118
# bytes) and empties of what fwd sends, freeing it as a NIC's transmit
# completion would; fwd checks each, captures its inner packet (capture:
# ingress, into a ring on huge pages) or not (none), and returns it. The
# generator (an mbuf allocated and 118 bytes copied per frame) and the
# freeing are on the same core, inside the measured time. The peer in the
# same run: rule forwarding on the same generator (64-byte frames into a
# ring pair, out of a net_null port), bench/fwd-dpdk.sh's setting,
# capture none and egress. LOOPBACK=1 measures the older setting instead:
# a net_ring loopback, where each return comes back in to another MAC and
# is dropped (two receives per frame).
# Usage: N=20000000 RUNS=3 [LOOPBACK=1] bench/gwlb-dpdk.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${N:-20000000}; RUNS=${RUNS:-3}
if [ "${LOOPBACK:-0}" = 1 ]; then
  in0=net_ring0 eal0=', "--vdev=net_ring0"'
else
  in0=ringpair:in0 eal0=
fi
FWDPKG=./cmd/fwd; [ -d cmd/fwd ] || FWDPKG=./fwd
go build -tags dpdk -o "$B/fwd-dpdk" "$FWDPKG"
go build -o "$B/" ./tools/fmring
rd=$(ringdir 4200)
ring=$rd/fmcap-gwlbbench
cfg=$W/gwlb-dpdk.yaml
trap 'rm -f "$ring"' EXIT
for cap in none ingress; do
  rates=()
  for i in $(seq "$RUNS"); do
    cat > "$cfg" <<YAML
ring:
  path: $ring
fwd:
  backend: dpdk
  metrics: ""
  dpdk:
    eal: ["--no-huge", "-m", "1024", "--no-pci", "-l", "1", "--file-prefix=fmgwbench"$eal0]
  ports:
    - name: g0
      device: $in0
      addresses: [198.18.1.2/24]
      gwlb: {rule: 1, capture: $cap}
YAML
    rm -f "$ring"
    # A lossy consumer only: nothing drains the ring, and capture never
    # waits (the writer's cost is bench/writer.sh's).
    "$B/fmring" create --ring "$ring" --size 4GiB --consumer idx:lossy >/dev/null
    out=$("$B/fwd-dpdk" --config "$cfg" --bench-gen "$N" --log-level warn 2>/dev/null | grep '^generated')
    echo "gwlb capture=$cap: $out"
    rates+=("$(sed -n 's/.*: \([0-9.]*\) Mpps$/\1/p' <<<"$out")")
  done
  printf 'gwlb capture=%s Mpps: %s\n' "$cap" "${rates[*]}"
  # The peer: a 1-1 rule from the generator's port to net_null.
  rates=()
  for i in $(seq "$RUNS"); do
    mode=$([ "$cap" = none ] && echo none || echo egress)
    cat > "$cfg" <<YAML
ring:
  path: $ring
fwd:
  backend: dpdk
  metrics: ""
  dpdk:
    eal: ["--no-huge", "-m", "1024", "--no-pci", "-l", "1", "--file-prefix=fmgwbench"$eal0, "--vdev=net_null0,no-rx=1"]
  ports:
    - name: p0
      device: $in0
      addresses: [198.18.1.1/24]
      neighbors: {198.18.1.2: "02:00:00:00:00:aa"}
    - name: p1
      device: net_null0
      addresses: [198.18.2.1/24]
      neighbors: {198.18.2.2: "02:00:00:00:00:bb"}
  rules:
    - {id: 1, in: p0, local: 198.18.1.1, peer: 198.18.1.2, out: p1, out_local: 198.18.2.1, target: 198.18.2.2, capture: $mode}
YAML
    rm -f "$ring"
    "$B/fmring" create --ring "$ring" --size 4GiB --consumer idx:lossy >/dev/null
    out=$("$B/fwd-dpdk" --config "$cfg" --bench-gen "$N" --log-level warn 2>/dev/null | grep '^generated')
    echo "rule capture=$mode: $out"
    rates+=("$(sed -n 's/.*: \([0-9.]*\) Mpps$/\1/p' <<<"$out")")
  done
  printf 'rule capture=%s Mpps: %s\n' "$mode" "${rates[*]}"
done
