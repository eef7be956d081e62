#!/usr/bin/env bash
# Boots systemd in a container (systemd-nspawn over a Debian debootstrap
# tree), installs fmcap into it with `make install DESTDIR=`, enables
# fmcap.target and checks, from inside, that the ring, writer, indexer and
# fwd units come up under systemd (Type=notify readiness, the fmcap user,
# the hardening) and that fwd answers fmctl; then stops the target and
# powers off. Prints what it saw; the exit status says whether all was up.
# Root only.
#
# Every run boots its own copy of the tree (mktemp), removed on exit, also
# when interrupted, so that two runs at once (two `make test`) or a run
# after an interrupted one never share a tree: a shared one was booted by
# both, and a leftover /proc mount in it made `rm -rf` walk the host's /proc.
# Nothing is removed across a mount point: what is mounted under the copy is
# unmounted first, and rm stays on the copy's filesystem. The pristine tree
# debootstrap makes ($FMCAP_NSPAWN_BASE, default /var/tmp/fmcap-nspawn-base)
# is built once, under a lock, published by rename, and never booted.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${FMCAP_NSPAWN_BASE:-/var/tmp/fmcap-nspawn-base}

# unmount_under DIR: unmounts every mount at or below DIR, deepest first.
unmount_under() {
  local m
  for m in $(findmnt -rn -o TARGET | awk -v d="$1" 'index($0, d "/") == 1 || $0 == d' | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}
# remove_tree DIR: unmount, then delete without crossing into another filesystem.
remove_tree() {
  [ -n "$1" ] && [ -d "$1" ] || return 0
  unmount_under "$1"
  rm -rf --one-file-system "$1" 2>/dev/null || echo "nspawn-check: could not remove all of $1" >&2
}

# Trees of earlier runs that were killed before their trap ran: their owner
# is gone. Another run's live tree is left alone.
for old in /var/tmp/fmcap-nspawn.*; do
  [ -f "$old/.fmcap-owner" ] || continue
  kill -0 "$(cat "$old/.fmcap-owner")" 2>/dev/null || remove_tree "$old"
done

if [ ! -e "$B/.fmcap-base-ok" ]; then
  exec 9>"$B.lock"
  flock 9
  if [ ! -e "$B/.fmcap-base-ok" ]; then
    for old in "$B".new.*; do remove_tree "$old"; rm -f "$old.log"; done   # a build interrupted (we hold the lock)
    new=$(mktemp -d "$B.new.XXXXXX")
    if ! debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2 bookworm "$new" http://deb.debian.org/debian >"$new.log" 2>&1; then
      echo "nspawn-check: debootstrap failed; the end of its log:" >&2
      tail -5 "$new.log" >&2
      remove_tree "$new"; rm -f "$new.log"
      exit 1
    fi
    rm -f "$new.log"
    unmount_under "$new"      # debootstrap's /proc and /sys, if it left them
    touch "$new/.fmcap-base-ok"
    remove_tree "$B"          # an unfinished one, if any
    mv "$new" "$B"
  fi
  exec 9>&-
fi

T=$(mktemp -d /var/tmp/fmcap-nspawn.XXXXXX)
nspawn_pid=
cleanup() {
  [ -z "$nspawn_pid" ] || kill "$nspawn_pid" 2>/dev/null || true
  [ -z "$nspawn_pid" ] || wait "$nspawn_pid" 2>/dev/null || true
  remove_tree "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo $$ > "$T/.fmcap-owner"
cp -a --reflink=auto "$B/." "$T/"
chmod 0755 "$T"   # the container's /: mktemp made it 0700, which locks out the fmcap user
# Binaries built for this run only: another run may be building bin/ now.
make -s install DESTDIR="$T" BIN="$T/.fmcap-bin" >/dev/null
cat > "$T/etc/fmcap/fmcap.yaml" <<'EOF'
# fmcap inside the test container
ring:
  path: /dev/shm/fmcap-ring
  size: 64MiB
  consumers: ["writer:lossless", "indexer:lossy"]
fwd:
  control: /run/fmcap/fwd.sock
  ports:
    - {name: p0, device: fa0, addresses: [198.18.1.1/24]}
    - {name: p1, device: fb0, addresses: [198.18.2.1/24]}
  rules:
    - {id: 1, in: p0, local: 198.18.1.1, peer: 198.18.1.2, out: p1, out_local: 198.18.2.1, target: 198.18.2.2, capture: both}
writer:
  store: /var/lib/fmcap/store
indexer:
  store: /var/lib/fmcap/store
EOF
u=$T/etc/systemd/system
cat > "$u/fmcap-test-net.service" <<'EOF'
[Unit]
Description=test ports for fwd (veth pairs in the container)
Before=fmcap-fwd.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/ip link add fa0 type veth peer name ha0
ExecStart=/usr/sbin/ip link add fb0 type veth peer name hb0
ExecStart=/bin/sh -c 'for d in fa0 ha0 fb0 hb0; do /usr/sbin/ip link set $d up; done'
EOF
cat > "$u/fmcap-check.service" <<'EOF'
[Unit]
Description=check fmcap under systemd, then power off
After=fmcap.target fmcap-fwd.service fmcap-writer.service fmcap-indexer.service
Wants=fmcap.target
[Service]
Type=oneshot
StandardOutput=file:/fmcap-check.out
StandardError=inherit
ExecStart=/bin/sh -c 'for i in $(seq 300); do n=0; for u in ring writer indexer fwd; do systemctl is-active -q fmcap-$$u && n=$$((n+1)); done; [ $$n = 4 ] && break; sleep 0.1; done; for s in ring writer indexer fwd; do echo "fmcap-$s: $(systemctl is-active fmcap-$s.service) $(systemctl show -p User --value fmcap-$s.service)"; done; /usr/local/bin/fmctl --socket /run/fmcap/fwd.sock stats | head -3; /usr/local/bin/fmring info --config /etc/fmcap/fmcap.yaml | sed -n "4,7p"; systemctl stop fmcap.target; for i in $(seq 100); do systemctl is-active -q fmcap-writer fmcap-indexer fmcap-fwd || break; sleep 0.1; done; for s in writer indexer fwd; do echo "after stop fmcap-$s: $(systemctl is-active fmcap-$s.service)"; done; for i in $(seq 100); do journalctl -q -o cat -u fmcap-fwd -u fmcap-writer | grep -cE "msg=stopped|msg=.writer stopped" | grep -q 2 && break; sleep 0.1; done; journalctl -q -o cat -u fmcap-fwd -u fmcap-writer | grep -E "msg=stopped|msg=.writer stopped" | sed "s/^/stop order: /" | cut -c1-90; journalctl -q -u fmcap-fwd -u fmcap-writer -u fmcap-indexer -u fmcap-ring --no-pager | tail -20'
ExecStartPost=/bin/systemctl --no-block poweroff
EOF
# nr_hugepages is not namespaced: in the container, fmcap-hugepages.service
# would set the host's (two runs at once could not put it back). The ring
# is on /dev/shm here; the unit still runs, in its place among the others.
mkdir -p "$u/fmcap-hugepages.service.d"
printf '[Service]\nExecStart=\nExecStart=/bin/true\n' > "$u/fmcap-hugepages.service.d/test.conf"
mkdir -p "$u/multi-user.target.wants"
for x in fmcap.target fmcap-test-net.service fmcap-check.service; do ln -sf "../$x" "$u/multi-user.target.wants/$x"; done
timeout 180 systemd-nspawn -q --register=no --keep-unit --private-network -D "$T" --boot >"$T/boot.log" 2>&1 &
nspawn_pid=$!
wait "$nspawn_pid" || true
nspawn_pid=
if [ ! -s "$T/fmcap-check.out" ]; then
  echo "no result from the container; the end of its boot log:" >&2
  tail -20 "$T/boot.log" >&2
  exit 1
fi
cat "$T/fmcap-check.out"
[ "$(grep -c '^fmcap-.*: active fmcap$' "$T/fmcap-check.out" || true)" -eq 4 ] &&
  grep -q '^forwarded' "$T/fmcap-check.out" &&
  [ "$(grep -c '^after stop fmcap-.*: inactive' "$T/fmcap-check.out" || true)" -eq 3 ]
