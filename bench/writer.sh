#!/usr/bin/env bash
# Writer throughput: pcap bytes stored per second, ring → zstd chunks, against
# `zstd -1 -T0` compressing the same pcap bytes to the same filesystem, in the
# same run. Then the frame-size trade-off (speed and ratio; the cost of a
# selective query is one frame's decompression: see BenchmarkReadFrame).
# MIX (web, imix, small) and PAYLOAD (mixed, random, text) pick bench/gen's
# traffic; LEVEL the writer's --level; DISKS="disk tmpfs" where the store is;
# RINGDIR where the ring is (default: huge pages when root), RING_MB its size.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${N:-2000000}
RUNS=${RUNS:-3}
SWEEP=${SWEEP:-1}      # 0: skip the frame-size and level sweep
FRAMES=${FRAMES:-32KiB} # frame sizes to compare side by side (the default: 32KiB)
# OLD_WRITER=path: another writer binary (say, an earlier commit's), timed
# alternately with this one for each frame size ("old-SIZE" lines).
MIX=${MIX:-web}
PAYLOAD=${PAYLOAD:-mixed}
LEVEL=${LEVEL:-1}
DISKS=${DISKS:-"disk tmpfs"}
in=$W/writer-in-$MIX-$PAYLOAD-$N.pcap
[ -f "$in" ] || "$B/gen" -o "$in" -n "$N" -mix "$MIX" -payload "$PAYLOAD"
bytes=$(stat -c %s "$in")
# RINGDIR=/dev/shm: the ring on tmpfs, leaving the machine's huge pages alone
# (on a shared machine another bench may hold them).
# RING_MB: the ring's size; the input must fit in it (about 0.9 of it),
# and huge pages for it must be free (a ring on tmpfs pages faults in 4 KiB
# at a time on its first lap, which took 77 % of the writer's CPU).
RING_MB=${RING_MB:-2048}
rd=${RINGDIR:-$(ringdir $((RING_MB + 150)))}
ring=$rd/fmcap-bench-ring-$$ # per run: the machine is shared, and so is $rd
shm=/dev/shm/fmcap-bench-$$  # the tmpfs store's directory
mkdir -p "$shm"
trap 'rm -rf "$shm" "$ring"; [ -n "${RINGDIR:-}" ] || ringrelease' EXIT
refill() {
  rm -f "$ring"
ringrelease
  "$B/fmring" create --ring "$ring" --size "${RING_MB}MiB" --consumer writer:lossless
  "$B/fminject" -q --ring "$ring" "$in"
}
# Each timed run starts with the page cache dropped (as root): with other
# benches' large pcaps cached, the kernel otherwise reclaims while the
# writer runs and single runs vary by a third.
writer_rate() { # store-dir [writer args]
  local st=$1; shift
  refill; rm -rf "$st"; dropcache
  local t0; t0=$(now)
  "${WBIN:-$B/writer}" --ring "$ring" --store "$st" --exit-on-close --log-level warn "$@"
  local t1; t1=$(now)
  local r; r=$(du -sb "$st" | awk -v b="$bytes" '{printf "%.3f", b/$1}')
  rm -rf "$st"
  echo "$t0 $t1" | awk -v b="$bytes" -v r="$r" '{printf "%.0f:%s", b/($2-$1)/1e6, r}'
}
zstd_rate() { # out-file
  rm -f "$1"; dropcache
  cat "$in" > /dev/null # the writer's input is in the ring, zstd's in the page cache
  local t0; t0=$(now)
  zstd -q -1 -T0 -c "$in" > "$1"
  local t1; t1=$(now)
  local r; r=$(stat -c %s "$1" | awk -v b="$bytes" '{printf "%.3f", b/$1}')
  rm -f "$1"
  echo "$t0 $t1" | awk -v b="$bytes" -v r="$r" '{printf "%.0f:%s", b/($2-$1)/1e6, r}'
}
# disk_rate: the filesystem's own speed for the input's bytes: dd of the
# page-cached pcap, fsynced at the end, as a reference for what the disk
# takes (not a bound: the writer, fsyncing chunk by chunk while it
# compresses the next, has gone faster than it on this VM's disk).
disk_rate() { # out-file
  rm -f "$1"; dropcache
  cat "$in" > /dev/null
  local t0; t0=$(now)
  dd if="$in" of="$1" bs=8M conv=fsync status=none
  local t1; t1=$(now)
  rm -f "$1"
  echo "$t0 $t1" | awk -v b="$bytes" '{printf "%.0f", b/($2-$1)/1e6}'
}
rates() { for x in "$@"; do printf '%s ' "${x%%:*}"; done; }
ratio() { echo "${1#*:}"; }
echo "input: $in, $N packets, $bytes bytes (bench/gen -mix $MIX -payload $PAYLOAD); writer --level $LEVEL; ring on $rd; $(nproc) cores"
for name in $DISKS; do
  dir=$W; [ "$name" = tmpfs ] && dir=$shm
  declare -A w=(); z=(); d=()
  for i in $(seq "$RUNS"); do
    for f in $FRAMES; do # alternated, so that a slow spell of the disk hits each alike
      w[$f]+="$(writer_rate "$dir/fmcap-bench-store" --frame-size "$f" --level "$LEVEL") "
      if [ -n "${OLD_WRITER:-}" ]; then
        w[old-$f]+="$(WBIN=$OLD_WRITER writer_rate "$dir/fmcap-bench-store" --frame-size "$f" --level "$LEVEL") "
      fi
    done
    z+=("$(zstd_rate "$dir/fmcap-bench.zst")")
    d+=("$(disk_rate "$dir/fmcap-bench.dd")")
  done
  zm=$(median $(rates "${z[@]}"))
  for f in $FRAMES ${OLD_WRITER:+$(printf 'old-%s ' $FRAMES)}; do
    r=(${w[$f]})
    wm=$(median $(rates "${r[@]}"))
    printf 'store on %-5s writer (%s frames) %5s MB/s (runs: %s) ratio %s | zstd -1 -T0 %5s MB/s (runs: %s) ratio %s | writer/zstd %.2f\n' \
      "$name" "$f" "$wm" "$(rates "${r[@]}")" "$(ratio "${r[0]}")" "$zm" "$(rates "${z[@]}")" "$(ratio "${z[0]}")" "$(echo "$wm $zm" | awk '{print $1/$2}')"
  done
  dm=$(median "${d[@]}")
  printf 'store on %-5s disk (dd conv=fsync of the input) %s MB/s (runs: %s)\n' "$name" "$dm" "${d[*]}"
  unset w
done
[ "$SWEEP" = 1 ] || exit 0
echo "frame size sweep (store on tmpfs, level 1, median of $RUNS):"
for fs in 16KiB 32KiB 64KiB 128KiB 256KiB 1MiB; do
  w=()
  for i in $(seq "$RUNS"); do w+=("$(writer_rate $shm/fmcap-bench-store --frame-size "$fs")"); done
  printf '  frame %-7s writer %5s MB/s (runs: %s) ratio %s\n' "$fs" "$(median $(rates "${w[@]}"))" "$(rates "${w[@]}")" "$(ratio "${w[0]}")"
done
for lv in 2 3; do
  w=()
  for i in $(seq "$RUNS"); do w+=("$(writer_rate $shm/fmcap-bench-store --level "$lv")"); done
  printf '  level %s (32KiB) writer %5s MB/s (runs: %s) ratio %s\n' "$lv" "$(median $(rates "${w[@]}"))" "$(rates "${w[@]}")" "$(ratio "${w[0]}")"
done
