#!/usr/bin/env bash
# Server CPU per cache miss (issue 15), several nodecache builds side by side.
#
# Knot serves a generated zone (the mix of bench/run.sh: A, AAAA, CNAME, TXT, NXDOMAIN) on
# 127.0.0.1, pinned with dnsperf to CPU 0. Per repetition, each binary in turn (the order
# rotates each repetition) is started cold on CPU 1 with `cache 30` + `forward . <knot>`, gets
# one dnsperf pass over all names (`-n 1 -q 100`: every query a miss but the probe's), and its
# CPU time is read before and after the pass:
#   ticks  = utime + stime of the process from /proc/<pid>/stat (what bench/run.sh reports),
#   sched  = the sum over its threads of /proc/<pid>/task/*/schedstat run time (ns precision).
# Both are divided by the queries dnsperf got answers for. CPU time, not throughput, so other
# load on the machine changes the figures less; still, compare builds only within one run.
#
# Before the measured repetitions one unrecorded warm-up pass runs (first binary only), so the
# first measured run does not pay for a cold knot.
#
# Usage: bench/miss_cpu.sh [--names N] [--reps R] NAME=BINARY... [dnsdist]
#   e.g. bench/miss_cpu.sh --reps 3 old=/tmp/old/nodecache new=target/release/nodecache dnsdist
#   `dnsdist` alone runs dnsdist configured as in bench/run.sh (packet cache, one listener).
# Prints one line per run and a median (min-max) per binary. With PERF_DIR=DIR set, each run is
# also recorded with `perf record -g` (DIR/NAME.REP.data; the recording costs CPU of its own,
# so compare figures only between runs that were all recorded or all not).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAMES=100000
REPS=3
declare -a BINS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --names) NAMES="$2"; shift ;;
        --reps) REPS="$2"; shift ;;
        -h|--help) sed -n 2,16p "$0"; exit 0 ;;
        *=*|dnsdist) BINS+=("$1") ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[ ${#BINS[@]} -gt 0 ] || { echo "give at least one NAME=BINARY" >&2; exit 2; }

SERVER_CPU=1
LOAD_CPU=0
KNOT_PORT=${KNOT_PORT:-15310}
PORT=${PORT:-15363}
ZONE=bench.example
CLK_TCK=$(getconf CLK_TCK)
WORK="$(mktemp -d /tmp/nodecache-miss.XXXXXX)"
KNOT_PID=""
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    [ -n "$KNOT_PID" ] && kill "$KNOT_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

python3 - "$WORK" "$NAMES" "$ZONE" <<'EOF'
import sys
work, n, zone = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(f"{work}/{zone}.zone", "w") as z, open(f"{work}/all.txt", "w") as q:
    z.write(f"$ORIGIN {zone}.\n$TTL 3600\n")
    z.write(f"@ SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 3600\n@ NS ns\nns A 127.0.0.1\n")
    for i in range(n):
        k = i % 5
        if k == 0:
            z.write(f"a{i} A 127.{10 + (i >> 16) % 200}.{(i >> 8) & 255}.{i & 255}\n"); q.write(f"a{i}.{zone} A\n")
        elif k == 1:
            z.write(f"q{i} AAAA 2001:db8::{i >> 16:x}:{i & 0xffff:x}\n"); q.write(f"q{i}.{zone} AAAA\n")
        elif k == 2:
            z.write(f"c{i} CNAME a{i - 2}\n"); q.write(f"c{i}.{zone} A\n")
        elif k == 3:
            z.write(f't{i} TXT "bench record {i}" "v=test"\n'); q.write(f"t{i}.{zone} TXT\n")
        else:
            z.write(f"n{i} A 127.0.0.{i % 250 + 1}\n"); q.write(f"x{i}.{zone} A\n")
EOF

mkdir -p "$WORK/knot"
cat > "$WORK/knot.conf" <<EOF
server:
    listen: 127.0.0.1@$KNOT_PORT
    rundir: $WORK/knot
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: $WORK/knot
template:
  - id: default
    storage: $WORK
    semantic-checks: off
    zonefile-sync: -1
    journal-content: none
zone:
  - domain: $ZONE
    file: $WORK/$ZONE.zone
EOF
taskset -c $LOAD_CPU knotd -c "$WORK/knot.conf" > "$WORK/knot.log" 2>&1 &
KNOT_PID=$!
[ "$(python3 "$HERE/probe.py" $KNOT_PORT "a0.$ZONE" 60 | tail -n 1)" != "-1" ] || { echo "knot did not start" >&2; exit 1; }
if grep -q error "$WORK/knot.log"; then echo "knot: zone errors" >&2; head -5 "$WORK/knot.log" >&2; exit 1; fi
log "knot up, $NAMES names"

cat > "$WORK/Corefile" <<EOF
.:$PORT {
    bind 127.0.0.1
    cache 30
    forward . 127.0.0.1:$KNOT_PORT
}
EOF

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
sched_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f", s }'; }

RESULTS="$WORK/results"
: > "$RESULTS"
n=${#BINS[@]}
cat > "$WORK/dnsdist.conf" <<EOF
setLocal('127.0.0.1:$PORT', {reusePort=true})
newServer({address='127.0.0.1:$KNOT_PORT', checkInterval=3600})
pc = newPacketCache(200000, {maxTTL=86400, minTTL=0, numberOfShards=16})
getPool(''):setCache(pc)
setACL('127.0.0.0/8')
setSecurityPollSuffix('')
EOF

for rep in $(seq 0 "$REPS"); do
    for k in $(seq 0 $((n - 1))); do
        [ "$rep" = 0 ] && [ "$k" != 0 ] && break
        spec="${BINS[$(((k + rep) % n))]}"
        name="${spec%%=*}" bin="${spec#*=}"
        if [ "$spec" = dnsdist ]; then
            taskset -c $SERVER_CPU dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf" > "$WORK/$name.log" 2>&1 &
        else
            taskset -c $SERVER_CPU "$bin" -conf "$WORK/Corefile" -dns.port $PORT > "$WORK/$name.log" 2>&1 &
        fi
        SERVER_PID=$!
        if [ "$(python3 "$HERE/probe.py" $PORT "a0.$ZONE" 30 | tail -n 1)" = "-1" ]; then
            echo "$name did not start" >&2; tail "$WORK/$name.log" >&2; exit 1
        fi
        sleep 0.3
        PERF_PID=""
        if [ -n "${PERF_DIR:-}" ]; then
            mkdir -p "$PERF_DIR"
            perf record -g -F 2000 -p $SERVER_PID -o "$PERF_DIR/$name.$rep.data" > /dev/null 2>&1 &
            PERF_PID=$!
            sleep 0.5
        fi
        t0=$(ticks $SERVER_PID) s0=$(sched_ns $SERVER_PID)
        taskset -c $LOAD_CPU dnsperf -s 127.0.0.1 -p $PORT -d "$WORK/all.txt" -n 1 -q 100 -l 120 -t 2 \
            > "$WORK/dnsperf.out" 2>&1 || true
        t1=$(ticks $SERVER_PID) s1=$(sched_ns $SERVER_PID)
        if [ -n "$PERF_PID" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; fi
        done=$(awk '/Queries completed:/ { print $3 }' "$WORK/dnsperf.out")
        lost=$(awk '/Queries lost:/ { print $3 }' "$WORK/dnsperf.out")
        codes=$(awk '/Response codes:/ { $1 = ""; $2 = ""; print }' "$WORK/dnsperf.out")
        kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
        [ "$rep" = 0 ] && { log "warm-up pass done ($name)"; continue; }
        awk -v nm="$name" -v r="$rep" -v d="$((t1 - t0))" -v s="$((s1 - s0))" -v q="${done:-0}" -v t="$CLK_TCK" \
            'BEGIN { if (q > 0) printf "%s\t%d\t%.2f\t%.2f\t%d\n", nm, r, d * 1e6 / t / q, s / 1e3 / q, q }' >> "$RESULTS"
        log "$name rep $rep: $(tail -n 1 "$RESULTS" | cut -f3,4 | sed 's/\t/ µs (ticks), /') µs (sched); answered ${done:-0} lost ${lost:-0};$codes"
    done
done

echo "name	median_ticks_us (min-max)	median_sched_us (min-max)	runs"
for spec in "${BINS[@]}"; do
    name="${spec%%=*}"
    awk -F'\t' -v nm="$name" '
        $1 == nm { t[++n] = $3; s[n] = $4 }
        function med(a, n,   i, j, x) {
            for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
            return sprintf("%.2f (%.2f-%.2f)", a[int((n + 1) / 2)], a[1], a[n])
        }
        END { if (n) printf "%s\t%s\t%s\t%d\n", nm, med(t, n), med(s, n), n }' "$RESULTS"
done
