#!/usr/bin/env bash
# Memory and descriptors of nodecache while its upstream is dead (issue 12).
#
# The upstream is a UDP and TCP port on 127.0.0.1 that takes queries and never answers. The
# server runs the node-local-dns shape (`cache` + `forward` with default options); dnsperf
# sends unique names (every query a cache miss) at a fixed rate for a while, then stops.
# Sampled every 0.5 s: VmRSS, open descriptors, and at the end VmHWM (peak RSS), the RSS a
# settle time after the load, and the queries failed at once by the waiting bound.
# While the load runs, a TCP query to a locally answered zone and GET /health are tried once
# a second: they must keep working (descriptors are bounded per upstream).
#
# All traffic goes to 127.0.0.1; the run is bounded by time.
#
# Usage: bench/dead_upstream.sh [--rate 5000] [--secs 20] [--settle 30] [--bin PATH]...
#   Each --bin is measured in turn (default: target/release/nodecache), so an older build can
#   be compared side by side with the current one.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
RATE=5000
SECS=20
SETTLE=30
BINS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE="$2"; shift ;;
        --secs) SECS="$2"; shift ;;
        --settle) SETTLE="$2"; shift ;;
        --bin) BINS+=("$2"); shift ;;
        -h|--help) sed -n 2,17p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[ ${#BINS[@]} -gt 0 ] || BINS=("$ROOT/target/release/nodecache")
command -v dnsperf >/dev/null || { echo "dnsperf is needed (apt-get install dnsperf)" >&2; exit 1; }
command -v dig >/dev/null || { echo "dig is needed (apt-get install bind9-dnsutils)" >&2; exit 1; }

WORK="$(mktemp -d /tmp/nodecache-dead.XXXXXX)"
DEAD_PID=""
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    [ -n "$DEAD_PID" ] && kill "$DEAD_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

DEAD_PORT=15399
PORT=15398
HEALTH=15397
PROM=15396

# The dead upstream: holds its UDP and TCP ports, reads and never answers.
python3 - "$DEAD_PORT" > "$WORK/dead.log" 2>&1 <<'EOF' &
import socket, sys, threading
port = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
u.bind(("127.0.0.1", port))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", port)); t.listen(1024)
def hold():
    conns = []
    while True:
        c, _ = t.accept(); conns.append(c)
threading.Thread(target=hold, daemon=True).start()
while True:
    u.recv(4096)
EOF
DEAD_PID=$!

total=$((RATE * SECS + 1000))
python3 - "$WORK/names.txt" "$total" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"u{i}.dead.example A\n")
EOF

cat > "$WORK/Corefile" <<EOF
local.test:$PORT {
    template IN A local.test {
        answer "{{ .Name }} 60 IN A 192.0.2.7"
    }
}
.:$PORT {
    errors
    cache 30
    forward . 127.0.0.1:$DEAD_PORT
    health 127.0.0.1:$HEALTH
    prometheus 127.0.0.1:$PROM
}
EOF

kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

for bin in "${BINS[@]}"; do
    name="$(basename "$bin")"
    "$bin" -conf "$WORK/Corefile" > "$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        dig +time=1 +tries=1 @127.0.0.1 -p $PORT a.local.test A > /dev/null 2>&1 && break
        sleep 0.1
    done
    start_rss=$(kb $SERVER_PID VmRSS)
    dnsperf -s 127.0.0.1 -p $PORT -d "$WORK/names.txt" -n 1 -Q "$RATE" -l "$SECS" -q 20000 -t 6 \
        > "$WORK/dnsperf.out" 2>&1 &
    perf_pid=$!
    max_fds=0; tcp_ok=0; tcp_tries=0; health_ok=0; samples=0
    end=$(( $(date +%s) + SECS ))
    while [ "$(date +%s)" -lt "$end" ]; do
        f=$(fds $SERVER_PID); [ "$f" -gt "$max_fds" ] && max_fds=$f
        samples=$((samples + 1))
        if [ $((samples % 2)) = 0 ]; then
            tcp_tries=$((tcp_tries + 1))
            dig +tcp +time=2 +tries=1 +short @127.0.0.1 -p $PORT t$samples.local.test A 2>/dev/null \
                | grep -q 192.0.2.7 && tcp_ok=$((tcp_ok + 1))
            curl -s -m 2 "http://127.0.0.1:$HEALTH/health" 2>/dev/null | grep -q OK && health_ok=$((health_ok + 1))
        fi
        sleep 0.5
    done
    wait "$perf_pid" || true
    peak=$(kb $SERVER_PID VmHWM)
    at_end=$(kb $SERVER_PID VmRSS)
    sleep "$SETTLE"
    after=$(kb $SERVER_PID VmRSS)
    rejects=$(curl -s "http://127.0.0.1:$PROM/metrics" | awk '/^nodecache_forward_waiting_rejects_total/ { s += $2 } END { print s + 0 }')
    emfile=$(grep -c "Too many open files" "$WORK/server.log" || true)
    sent=$(awk '/Queries sent:/ { print $3 }' "$WORK/dnsperf.out")
    completed=$(awk '/Queries completed:/ { print $3 }' "$WORK/dnsperf.out")
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    printf '%s: rate %s q/s for %s s (sent %s, answered %s); RSS start %.1f MiB, peak %.1f MiB, at end of load %.1f MiB, %s s later %.1f MiB; max fds %s; waiting rejects %s; EMFILE log lines %s; TCP to a local zone %s/%s, /health %s/%s\n' \
        "$name" "$RATE" "$SECS" "$sent" "$completed" \
        "$(echo "$start_rss / 1024" | bc -l)" "$(echo "$peak / 1024" | bc -l)" "$(echo "$at_end / 1024" | bc -l)" \
        "$SETTLE" "$(echo "$after / 1024" | bc -l)" "$max_fds" "$rejects" "$emfile" "$tcp_ok" "$tcp_tries" "$health_ok" "$tcp_tries"
done
