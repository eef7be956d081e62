#!/usr/bin/env bash
# All whole-pipeline benchmarks; figures go to bench/RESULTS.md by hand, with
# the command that produced them.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/ ./bench/gen ./bench/ringbench
R=$(. bench/lib.sh; ringdir 600)
for a in false true; do
  bin/ringbench -all=$a -size 64 -n 20000000 -ring "$R/ringbench"
  bin/ringbench -all=$a -size 1500 -n 3000000 -ring "$R/ringbench"
done
bench/writer.sh
bench/slice.sh
bench/fwd-dpdk.sh
bench/fwd-ns.sh
