#!/usr/bin/env bash
# Boots systemd in a container (systemd-nspawn over a Debian debootstrap
# tree), installs fmcap into it with `make install DESTDIR=`, enables
# fmcap.target and checks, from inside, that the ring, writer, indexer and
# fwd units come up under systemd (Type=notify readiness, the fmcap user,
# the hardening) and that fwd answers fmctl; then stops the target and
# powers off. Prints what it saw; the exit status says whether all was up.
# Root only. The tree is kept in $FMCAP_NSPAWN_TREE (default
# /var/tmp/fmcap-nspawn) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${FMCAP_NSPAWN_TREE:-/var/tmp/fmcap-nspawn}
if [ ! -x "$T/lib/systemd/systemd" ] || [ ! -x "$T/usr/sbin/ip" ]; then
  rm -rf "$T"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2 bookworm "$T" http://deb.debian.org/debian >/dev/null
fi
make -s install DESTDIR="$T" >/dev/null
rm -rf "$T/var/lib/fmcap" "$T/fmcap-check.out" "$T/var/log/journal"
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
mkdir -p "$u/multi-user.target.wants"
for x in fmcap.target fmcap-test-net.service fmcap-check.service; do ln -sf "../$x" "$u/multi-user.target.wants/$x"; done
# nr_hugepages is not namespaced: fmcap-hugepages.service in the container
# sets the host's. Put back what was there.
hp=$(cat /proc/sys/vm/nr_hugepages)
timeout 180 systemd-nspawn -q --register=no --keep-unit --private-network -D "$T" --boot >"$T/boot.log" 2>&1 || true
echo "$hp" > /proc/sys/vm/nr_hugepages || true
if [ ! -s "$T/fmcap-check.out" ]; then
  echo "no result from the container; its boot log:" >&2
  tail -40 "$T/boot.log" >&2
  exit 1
fi
cat "$T/fmcap-check.out"
[ "$(grep -c '^fmcap-.*: active fmcap$' "$T/fmcap-check.out" || true)" -eq 4 ] &&
  grep -q '^forwarded' "$T/fmcap-check.out" &&
  [ "$(grep -c '^after stop fmcap-.*: inactive' "$T/fmcap-check.out" || true)" -eq 3 ]
