#!/usr/bin/env bash
# Runs the commands of README.md's "Using it by hand" section exactly as
# they are written (every line of its sh blocks, in order, in one shell, as
# root), from an empty state, and checks what they did. So the README
# cannot drift from what works.
#
# The commands run in a copy of this tree (as a fresh checkout: no bin/),
# mounted over it in a network and mount namespace of their own: empty tmpfs on /dev/shm,
# /run and /var/lib/fmcap, and the two interfaces the shipped configuration
# names, eth1 and eth2 (veths, IPv6 off). Nothing outside is touched but
# the (empty) mount point /var/lib/fmcap, made if missing; two runs at once
# do not meet. A pause of a second after each command started in the
# background stands in for the person typing (for fwd, until its control
# socket is there). Root only; exit 0 when every
# check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ "$(id -u)" -ne 0 ]; then
  echo "readme-by-hand: needs root (namespaces, mounts)" >&2
  exit 2
fi
W=$(mktemp -d /tmp/fmcap-readme.XXXXXX)
trap 'rm -rf --one-file-system "$W"' EXIT
start=$SECONDS
awk '/^## Using it by hand/ {on = 1; next} /^## / {on = 0}
     on && /^```sh/ {b = 1; next} on && /^```/ {b = 0; next} on && b' README.md > "$W/commands"
[ -s "$W/commands" ] || { echo "readme-by-hand: no commands in README.md's \"Using it by hand\"" >&2; exit 1; }
mkdir "$W/src"
tar -C "$root" --exclude=./.git --exclude=./bin --exclude=./demo-out -cf - . | tar -C "$W/src" -xf -
mkdir -p /var/lib/fmcap

cat > "$W/inner.sh" <<'INNER'
set -euo pipefail
W=$1 root=$2
# The copy, seen at this tree's own path: the same paths as a build here,
# so Go's build cache serves make build (a copy elsewhere recompiled the
# cgo packages: a minute on two cores).
mount --bind "$W/src" "$root"
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=0755 tmpfs /var/lib/fmcap
ip link set lo up
for i in 1 2; do
  ip link add eth$i type veth peer name peer$i
  sysctl -qw net.ipv6.conf.eth$i.disable_ipv6=1
  ip link set eth$i up; ip link set peer$i up
done
cd "$root"
umask 022   # a person's shell
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; }
trap stop EXIT
while IFS= read -r line <&3; do
  [ -n "$line" ] || continue
  printf '[%3ds] $ %s\n' "$SECONDS" "$line"
  if [[ $line == *'&' ]]; then
    eval "$line" </dev/null
    pids+=($!)
    sleep 1
    # fwd takes a moment to open its ports and map the ring: a person
    # would see fmctl say it is not up yet and try again.
    if [[ $line == bin/fwd* ]]; then
      for i in $(seq 300); do [ -S /run/fmcap/fwd.sock ] && break; sleep 0.1; done
    fi
  else
    eval "$line" </dev/null || { echo "readme-by-hand: FAILED: $line" >&2; exit 1; }
  fi
done 3< "$W/commands"   # the commands' own stdin is /dev/null, as in CI
# Stopped as the README says: fwd detaches, the writer drains the ring.
printf '[%3ds] stop\n' "$SECONDS"
stop
printf '[%3ds] stopped\n' "$SECONDS"
pids=()
# What the background commands left: the store, 0750/0640.
find /var/lib/fmcap/store \( -type d ! -perm 0750 \) -o \( -type f ! -perm 0640 \) | sed 's/^/wrong mode: /'
ls /var/lib/fmcap/store/index | grep -c '^seg' | sed 's/^/index segments: /'
grep -v '^ *#' fmcap.yaml | grep -c 'id: 1' | sed 's/^/rules written back: /' || true
INNER

out=$W/out
printf 'readme-by-hand: copied the tree in %ds\n' $((SECONDS - start)) >"$out"
if ! unshare --mount --net --fork --propagation private bash "$W/inner.sh" "$W" "$root" >>"$out" 2>&1; then
  echo "readme-by-hand: a command failed; the end of the session:" >&2
  tail -25 "$out" >&2
  exit 1
fi
fail=0
check() { # check WHAT REGEX: the session printed a line matching REGEX
  if ! grep -Eq -- "$2" "$out"; then echo "readme-by-hand: no $1 (want a line matching /$2/)" >&2; fail=1; fi
}
check "injection summary"            '^fminject: 3500 packets injected, 0 dropped'
check "ring in fmring info"          '^ring +/dev/shm/fmcap-ring$'
check "writer slot in fmring info"   '^writer +lossless'
check "indexer slot in fmring info"  '^indexer +lossy'
check "HTTP packets from fmslice"    'IP 198\.18\.1\.2\.8080 > 198\.18\.1\.1\.58426'
check "flow from fmslice flows"      '198\.18\.1\.1.*198\.18\.1\.2|198\.18\.1\.2.*198\.18\.1\.1'
check "fwd's configuration check"    'fmcap\.yaml: OK, 2 ports, 0 rules'
check "rule 1, inline, in the list"  '^1 +p0 +198\.18\.1\.1 +198\.18\.1\.2 +p1 +198\.18\.2\.1 +198\.18\.9\.10 +65535 +inline'
check "fmctl stats"                  '^forwarded'
check "writer figures in fmctl stats" '^  fmcap_writer_packets_total +3500$'
check "ring figures in fmctl stats"  '^RING'
check "index segments"               '^index segments: [1-9]'
check "rule written to fmcap.yaml"   '^rules written back: [1-9]'
if grep -q '^wrong mode: ' "$out"; then grep '^wrong mode: ' "$out" | head -5 >&2; fail=1; fi
if [ "$fail" -ne 0 ]; then
  echo "readme-by-hand: the session was:" >&2
  cut -c1-160 "$out" | tail -60 >&2
  exit 1
fi
echo "readme-by-hand: $(grep -c '^\[ *[0-9]*s\] \$ ' "$out") commands of README.md run as written; all checks passed"
