# Shared by the bench/*.sh scripts: where to work, a ring on huge pages when
# possible, and timing.
B=${B:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bin}
W=${BENCH_DIR:-/tmp/fmcap-bench}
mkdir -p "$W"

# ringdir: hugetlbfs (as in production) when we can reserve pages, else /dev/shm.
FMCAP_HP0=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || true)

# dropcache: write back and drop the page cache (as root; else only sync),
# so that a timed run does not depend on what earlier benches left cached.
dropcache() { sync; if [ "$(id -u)" = 0 ]; then echo 1 > /proc/sys/vm/drop_caches; fi; }

# hugefree: huge pages free and not reserved by a mapping made earlier
# (another bench's ring holds its reservation until it touches its pages).
hugefree() { awk '/HugePages_Free/ {f=$2} /HugePages_Rsvd/ {r=$2} END {print f-r}' /proc/meminfo; }

ringdir() {
  local need_mb=$1
  if [ "$(id -u)" -eq 0 ]; then
    local pages=$(( need_mb / 2 + 16 ))
    local have; have=$(hugefree)
    if [ "${have:-0}" -lt "$pages" ]; then
      local total; total=$(cat /proc/sys/vm/nr_hugepages)
      echo $(( total + pages - have )) > /proc/sys/vm/nr_hugepages || true
      have=$(hugefree)
      if [ "${have:-0}" -lt "$pages" ]; then
        # The page cache holds the memory (large pcaps of other benches),
        # or what is free is in pieces: drop it, compact, and try once more.
        dropcache
        echo 1 > /proc/sys/vm/compact_memory 2>/dev/null || true
        total=$(cat /proc/sys/vm/nr_hugepages)
        have=$(hugefree)
        echo $(( total + pages - have )) > /proc/sys/vm/nr_hugepages || true
      fi
    fi
    mkdir -p /dev/hugepages
    mountpoint -q /dev/hugepages || mount -t hugetlbfs none /dev/hugepages || true
    have=$(hugefree)
    if mountpoint -q /dev/hugepages && [ "${have:-0}" -ge "$pages" ]; then
      echo /dev/hugepages; return
    fi
  fi
  echo /dev/shm
}

# ringrelease: give back the huge pages ringdir reserved once the ring file is
# gone, so that large benches have the memory for the page cache.
ringrelease() {
  if [ "$(id -u)" -eq 0 ] && [ -n "${FMCAP_HP0:-}" ]; then
    echo "$FMCAP_HP0" > /proc/sys/vm/nr_hugepages || true
  fi
}

now() { date +%s.%N; }
# cpu_ticks prints the machine's busy and total jiffies (/proc/stat, every
# CPU): the CPU a run used, to show whether it was bound by the cores.
cpu_ticks() { awk '/^cpu /{b=$2+$3+$4+$7+$8; print b, b+$5+$6+$9}' /proc/stat; }
# pticks PID prints a running process's CPU (user + system, all threads, in
# CLK_TCK ticks; 0 once it is gone).
pticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# s3server DIR: versitygw (FMCAP_VERSITYGW, else the binary internal/s3test
# built into ~/.cache/fmcap/s3test: go test -run TestServer ./internal/s3test
# builds it), posix backend under DIR/root, on a free loopback port; sets
# the AWS_* variables for it, S3PID, and an EXIT trap that stops it. The
# caller makes its buckets (aws s3 mb). S3FLAGS: options of the posix
# backend (e.g. --data-integrity-etag).
s3server() {
  local dir=$1
  local vgw=${FMCAP_VERSITYGW:-$(ls ~/.cache/fmcap/s3test/versitygw-*/versitygw | head -1)}
  rm -rf "$dir"; mkdir -p "$dir/root"
  local port; port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  export AWS_ACCESS_KEY_ID=FMCAPBENCHACCESSKEY1 AWS_SECRET_ACCESS_KEY=fmcapBenchSecretKey0123456789abcdefghij AWS_REGION=us-east-1
  export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port AWS_EC2_METADATA_DISABLED=true
  ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
    "$vgw" --port 127.0.0.1:$port --region us-east-1 --quiet posix ${S3FLAGS:-} "$dir/root" > "$dir/log" 2>&1 &
  S3PID=$!
  trap 'kill $S3PID 2>/dev/null; wait $S3PID 2>/dev/null' EXIT
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
}
