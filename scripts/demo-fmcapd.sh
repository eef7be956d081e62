#!/usr/bin/env bash
# The demo's store over HTTPS (after scripts/demo-live.sh made
# demo-out/store): a demo PKI (fmcapd certs), fmcapd with client
# certificates, a slice fetched with curl and with fmslice --server (each
# compared with the local fmslice's), the URL and the lines to use it, and a
# screenshot of the page (demo-out/fmcapd.png, by headless chromium, from a
# second fmcapd in its loopback-only local mode). Both fmcapd stop on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/bin
out=$PWD/demo-out
store=$out/store
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
[ -d "$store" ] || { echo "demo-fmcapd: no $store (run scripts/demo-live.sh first)" >&2; exit 1; }

# url LOG: the URL fmcapd logs once it listens.
url() { for _ in $(seq 100); do u=$(grep -o 'url=[^ ]*' "$1" | head -1 | cut -d= -f2); [ -n "$u" ] && { echo "$u"; return; }; sleep 0.1; done; echo "fmcapd did not start:" >&2; cat "$1" >&2; exit 1; }

step "fmcapd: a demo CA, server and client certificates; the store over HTTPS"
rm -rf "$out/pki"
$B/fmcapd certs --dir "$out/pki"
ls "$out/pki"
$B/fmcapd --store "demo=$store" --listen 127.0.0.1:0 --tls-cert "$out/pki/server.pem" --tls-key "$out/pki/server-key.pem" \
  --client-ca "$out/pki/ca.pem" --max-range 0 --audit-log "$out/fmcapd-audit.log" 2>"$out/fmcapd.log" & pids+=($!)
base=$(url "$out/fmcapd.log")
creds=(--cacert "$out/pki/ca.pem" --cert "$out/pki/client.pem" --key "$out/pki/client-key.pem")

step "curl: the HTTP transfer (tcp port 8080) as pcap, and the stored span"
curl -sS "${creds[@]}" -o "$out/remote.pcap" "$base/api/v1/pcap?from=0&to=now&filter=tcp+port+8080"
$B/fmslice --store "$store" --from 0 --to now -q -w "$out/local.pcap" tcp port 8080
cmp "$out/remote.pcap" "$out/local.pcap" && echo "curl's answer is byte for byte the local fmslice's ($(stat -c %s "$out/remote.pcap") bytes)"
curl -sS "${creds[@]}" "$base/api/v1/info" | grep -E '"(first|last|packets)"'

step "fmslice --server: the same commands, remote"
$B/fmslice --server "$base" --cert "$out/pki/client.pem" --key "$out/pki/client-key.pem" --ca "$out/pki/ca.pem" \
  --from 0 --to now -q icmp | tcpdump -nn -r - 2>/dev/null | head -4
echo "without a certificate:"
$B/fmslice --server "$base" --ca "$out/pki/ca.pem" info || echo "(refused, exit $?)"
echo "audit log:"; tail -3 "$out/fmcapd-audit.log"

if command -v chromium >/dev/null; then
  step "the page: a screenshot (demo-out/fmcapd.png)"
  $B/fmcapd --store "demo=$store" --listen 127.0.0.1:0 --max-range 0 --audit-log /dev/null 2>"$out/fmcapd-local.log" & pids+=($!)
  local_url=$(url "$out/fmcapd-local.log")
  chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,800 --virtual-time-budget=8000 \
    --user-data-dir="$(mktemp -d)" --screenshot="$out/fmcapd.png" "$local_url/" >/dev/null 2>&1 || true
  [ -s "$out/fmcapd.png" ] && echo "saved $out/fmcapd.png"
fi

step "to use it yourself"
cat <<TXT
fmcapd --store $store --listen 127.0.0.1:8443 --tls-cert $out/pki/server.pem --tls-key $out/pki/server-key.pem --client-ca $out/pki/ca.pem &
curl ${creds[*]} -o slice.pcap 'https://127.0.0.1:8443/api/v1/pcap?from=-1h&to=now&filter=tcp'
fmslice --server https://127.0.0.1:8443 --cert $out/pki/client.pem --key $out/pki/client-key.pem --ca $out/pki/ca.pem --from -1h --to now tcp
open https://127.0.0.1:8443/ in a browser with the client certificate (or run fmcapd without --client-ca on loopback)
TXT
