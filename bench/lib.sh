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

ringdir() {
  local need_mb=$1
  if [ "$(id -u)" -eq 0 ]; then
    local pages=$(( need_mb / 2 + 16 ))
    local have; have=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
    if [ "${have:-0}" -lt "$pages" ]; then
      local total; total=$(cat /proc/sys/vm/nr_hugepages)
      echo $(( total + pages - have )) > /proc/sys/vm/nr_hugepages || true
      have=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
      if [ "${have:-0}" -lt "$pages" ]; then
        # The page cache holds the memory (large pcaps of other benches),
        # or what is free is in pieces: drop it, compact, and try once more.
        dropcache
        echo 1 > /proc/sys/vm/compact_memory 2>/dev/null || true
        total=$(cat /proc/sys/vm/nr_hugepages)
        have=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
        echo $(( total + pages - have )) > /proc/sys/vm/nr_hugepages || true
      fi
    fi
    mkdir -p /dev/hugepages
    mountpoint -q /dev/hugepages || mount -t hugetlbfs none /dev/hugepages || true
    have=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
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
# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
