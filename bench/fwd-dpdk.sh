#!/usr/bin/env bash
# The whole DPDK forwarder without a kernel in the path: port 0 is a
# net_ring loopback that fwd --bench-gen fills with N 64-byte TCP frames,
# port 1 is net_null (transmit discards). Capture on (the rule's mode),
# into a ring on huge pages; afterwards every capture copy is checked by
# bench/fwdverify. Peer in the same run: the same forwarder with capture
# off (mode none), so the ratio is what capture costs.
# Usage: N=20000000 RUNS=3 bench/fwd-dpdk.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${N:-20000000}; RUNS=${RUNS:-3}
go build -tags dpdk -o "$B/fwd-dpdk" ./cmd/fwd
go build -o "$B/fwdverify" ./bench/fwdverify
rd=$(ringdir 4200)
ring=$rd/fmcap-fwdbench
cfg=$W/fwd-dpdk.yaml
trap 'rm -f "$ring"' EXIT
for mode in none egress both; do
  rates=()
  for i in $(seq "$RUNS"); do
    cat > "$cfg" <<EOF
ring:
  path: $ring
fwd:
  backend: dpdk
  dpdk:
    eal: ["--no-huge", "-m", "1024", "--no-pci", "-l", "1", "--file-prefix=fmbench", "--vdev=net_ring0", "--vdev=net_null0,no-rx=1"]
  ports:
    - name: p0
      device: net_ring0
      addresses: [198.18.1.1/24]
      neighbors: {198.18.1.2: "02:00:00:00:00:aa"}
    - name: p1
      device: net_null0
      addresses: [198.18.2.1/24]
      neighbors: {198.18.2.2: "02:00:00:00:00:bb"}
  rules:
    - {id: 1, in: p0, local: 198.18.1.1, peer: 198.18.1.2, out: p1, out_local: 198.18.2.1, target: 198.18.2.2, capture: $mode}
EOF
    rm -f "$ring"
    "$B/fmring" create --ring "$ring" --size 4GiB --consumer verify:lossless >/dev/null
    out=$("$B/fwd-dpdk" --config "$cfg" --bench-gen "$N" --log-level warn 2>/dev/null | grep '^generated')
    echo "capture $mode run $i: $out"
    rates+=("$(echo "$out" | awk '{print $(NF-1)}')")
    case $mode in
      egress) "$B/fwdverify" --ring "$ring" -n "$N" ;;
      both)   : ;; # two copies per packet, ingress and egress: counted above
    esac
  done
  echo "capture $mode: median $(median "${rates[@]}") Mpps over $RUNS runs"
done
