#!/usr/bin/env bash
# nodecache performance harness (issue 8).
#
# Compares nodecache with other forwarding caches (unbound, pdns-recursor, dnsmasq, dnsdist,
# plus any --extra server such as CoreDNS) and a UDP echo floor. Knot serves a generated zone
# of 100,000 names on 127.0.0.1 as the upstream; every server forwards to it and caches.
#
# Per server and repetition: cold start, a mostly-miss pass over 100,000 names, a warm-up, a
# max-rate cache-hit run over 1,000 names, a fixed-rate (20k QPS) cache-hit run without `-v`
# (server CPU and context switches per query at that rate: the wake-up pattern), a fixed-rate
# latency run with per-query percentiles (`-v`, which changes the load's timing, so its CPU is
# not the fixed-rate figure), server CPU µs/query (on-CPU time of all threads from
# /proc/<pid>/task/*/schedstat, /proc/<pid>/stat ticks where that is missing), context switches
# per query (voluntary + involuntary, all threads), peak RSS (VmHWM); then a second start with
# two workers for a two-worker cache-hit run. summary.md ends with a "Targets" block (issue 15)
# that checks nodecache against the peers of the run.
#
# All traffic goes to 127.0.0.1. Every run is bounded by count (-n) and time (-l). The ports
# are BENCH_PORT (15353, the server under test) and BENCH_KNOT_PORT (15300, knot).
#
# Usage: bench/run.sh [--quick] [--reps N] [--servers "nodecache unbound ..."]
#                     [--extra 'NAME=CMD'] [--out DIR] [--no-install] [--profile]
#   --profile: instead of the comparison, record nodecache with `perf record -e cpu-clock`
#            (valgrind callgrind when perf is unusable) during one miss pass and one hit run
#            and write the flat self-time reports to OUT/perf.{miss,hit}.txt.
#   --extra: CMD may use {PORT}, {UPSTREAM} (127.0.0.1:port of knot), {COREFILE} (a Corefile
#            equivalent to nodecache's), {WORKERS}. Example:
#            --extra 'coredns=/usr/local/bin/coredns -conf {COREFILE} -dns.port {PORT}'
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

REPS=3
QUICK=0
PROFILE=0
INSTALL=1
SERVERS="echo nodecache unbound pdns-recursor dnsmasq dnsdist"
declare -a EXTRA_NAMES=()
declare -A EXTRA_CMDS=()
OUT=""
NODECACHE_BIN="${NODECACHE_BIN:-$ROOT/target/release/nodecache}"

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --reps) REPS="$2"; shift ;;
        --servers) SERVERS="$2"; shift ;;
        --extra)
            name="${2%%=*}"; cmd="${2#*=}"
            EXTRA_NAMES+=("$name"); EXTRA_CMDS[$name]="$cmd"; shift ;;
        --out) OUT="$2"; shift ;;
        --no-install) INSTALL=0 ;;
        --profile) PROFILE=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

# Sizes and durations (seconds). --quick shrinks everything for a smoke run.
NAMES=100000
HIT_NAMES=1000
HIT_SECS=${HIT_SECS:-10}
LAT_SECS=${LAT_SECS:-10}
LAT_QPS=20000
TWO_SECS=${TWO_SECS:-8}
MISS_LIMIT=180
if [ "$QUICK" = 1 ]; then
    NAMES=5000; HIT_NAMES=200; HIT_SECS=2; LAT_SECS=2; LAT_QPS=5000; TWO_SECS=2; MISS_LIMIT=30
    [ "$REPS" = 3 ] && REPS=1
fi

SERVER_CPU=1     # the server under test
LOAD_CPU=0       # dnsperf and knot
KNOT_PORT=${BENCH_KNOT_PORT:-15300}
PORT=${BENCH_PORT:-15353}
ZONE=bench.example
CLK_TCK=$(getconf CLK_TCK)
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# ---------------------------------------------------------------------------------------------
# Install (Debian packages only).
if [ "$INSTALL" = 1 ]; then
    need=()
    command -v dnsperf >/dev/null || need+=(dnsperf)
    command -v knotd >/dev/null || need+=(knot)
    command -v unbound >/dev/null || need+=(unbound)
    command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
    command -v pdns_recursor >/dev/null || need+=(pdns-recursor)
    command -v dnsdist >/dev/null || need+=(dnsdist)
    command -v rustc >/dev/null || need+=(rustc)
    command -v python3 >/dev/null || need+=(python3)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing: ${need[*]}"
        [ "$(id -u)" = 0 ] || { echo "run as root to install ${need[*]}" >&2; exit 1; }
        apt-get update -qq
        # Keep the packages' own services from starting (they would bind port 53).
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
        rm -f /usr/sbin/policy-rc.d
    fi
fi

case " $SERVERS " in
    *" nodecache "*) [ -x "$NODECACHE_BIN" ] || (cd "$ROOT" && cargo build --release --bin nodecache) ;;
esac

WORK="$(mktemp -d /tmp/nodecache-bench.XXXXXX)"
[ -n "$OUT" ] || OUT="$HERE/out/$(date -u +%Y%m%dT%H%M%S)"
mkdir -p "$OUT"
RAW="$OUT/raw.tsv"
: > "$RAW"
log "work dir $WORK, results in $OUT"

KNOT_PID=""
SERVER_PID=""
COLD_MS=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    [ -n "$KNOT_PID" ] && kill "$KNOT_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
        mkdir -p "$OUT/logs"; cp "$WORK"/*.log "$WORK"/*.conf "$WORK/conf/Corefile" "$OUT/logs/" 2>/dev/null || true
        cp -r "$WORK/pdns/recursor.conf" "$OUT/logs/" 2>/dev/null || true
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT INT TERM

# ---------------------------------------------------------------------------------------------
# Zone and query files. Name i has kind i % 5: A, AAAA, CNAME -> A, TXT, NXDOMAIN (the zone
# holds n<i> for those, the query asks x<i>, which does not exist).
log "generating zone of $NAMES names"
python3 - "$WORK" "$NAMES" "$HIT_NAMES" "$ZONE" <<'EOF'
import sys
work, n, hit, zone = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
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
with open(f"{work}/all.txt") as q, open(f"{work}/hit.txt", "w") as h:
    for _, line in zip(range(hit), q):
        h.write(line)
EOF

# The same root hints for everyone that wants them: the root is "served" on loopback only, so
# no resolver primes against the real root servers.
cat > "$WORK/root.hints" <<EOF
.                        3600000      NS    a.root-servers.net.
a.root-servers.net.      3600000      A     127.0.0.1
EOF

# ---------------------------------------------------------------------------------------------
# Knot: the authoritative upstream, on the load generator's CPU.
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
if [ "$($PY "$HERE/probe.py" $KNOT_PORT "a0.$ZONE" 60 | tail -n 1)" = "-1" ]; then
    echo "knot did not start" >&2; cat "$WORK/knot.log" >&2; exit 1
fi
# The zone must have loaded: knot answers REFUSED for everything otherwise, and every figure
# below would be about forwarding REFUSED.
if grep -q "error" "$WORK/knot.log"; then
    echo "knot reported errors loading the zone:" >&2; head -5 "$WORK/knot.log" >&2; exit 1
fi
$PY - "$KNOT_PORT" "$ZONE" "$NAMES" <<'EOF_CHECK' || { echo "knot does not serve the zone" >&2; exit 1; }
import socket, struct, sys
port, zone, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def ask(name, qtype):
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    s.sendto(struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + wire + struct.pack(">HH", qtype, 1), ("127.0.0.1", port))
    d = s.recv(4096)
    return d[3] & 15, struct.unpack(">H", d[6:8])[0]
last_aaaa = max(i for i in range(n) if i % 5 == 1)
assert ask(f"a0.{zone}", 1) == (0, 1), "a0 A"
assert ask(f"q{last_aaaa}.{zone}", 28) == (0, 1), "last AAAA"
assert ask(f"x4.{zone}", 1)[0] == 3, "NXDOMAIN"
EOF_CHECK
log "knot up (pid $KNOT_PID), zone of $NAMES names loaded"

# ---------------------------------------------------------------------------------------------
# Server configurations. $1 = workers (1 or 2). Each writes its config and prints the command.
# The Corefile gets a directory of its own: nodecache watches the Corefile's directory for
# reloads, and dnsperf's outputs (one line per query with -v) are written to $WORK; in the same
# directory every line written woke the reloader, a thread per query on the server's CPU.
mkdir -p "$WORK/conf"
COREFILE="$WORK/conf/Corefile"
cat > "$COREFILE" <<EOF
.:$PORT {
    bind 127.0.0.1
    errors
    cache
    forward . 127.0.0.1:$KNOT_PORT
}
EOF

cmd_echo() { echo "/tmp/nodecache-bench-echo $PORT"; }
cmd_nodecache() { echo "$NODECACHE_BIN -conf $COREFILE -dns.port $PORT"; }
cmd_unbound() {
    cat > "$WORK/unbound.conf" <<EOF
server:
    interface: 127.0.0.1
    port: $PORT
    do-ip6: no
    num-threads: $1
    so-reuseport: yes
    msg-cache-size: 64m
    rrset-cache-size: 128m
    key-cache-size: 1m
    neg-cache-size: 16m
    access-control: 127.0.0.0/8 allow
    username: ""
    chroot: ""
    directory: "$WORK"
    pidfile: ""
    do-daemonize: no
    use-syslog: no
    logfile: ""
    verbosity: 0
    module-config: "iterator"
    qname-minimisation: no
    do-not-query-localhost: no
    root-hints: "$WORK/root.hints"
    prefetch: no
    num-queries-per-thread: 4096
    outgoing-range: 8192
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@$KNOT_PORT
EOF
    echo "unbound -d -c $WORK/unbound.conf"
}
cmd_pdns-recursor() {
    mkdir -p "$WORK/pdns"
    cat > "$WORK/pdns/recursor.conf" <<EOF
local-address=127.0.0.1
local-port=$PORT
allow-from=127.0.0.0/8
forward-zones-recurse=.=127.0.0.1:$KNOT_PORT
hint-file=$WORK/root.hints
threads=$1
pdns-distributes-queries=no
reuseport=yes
max-cache-entries=200000
max-packetcache-entries=200000
max-negative-ttl=3600
socket-dir=$WORK/pdns
daemon=no
write-pid=no
quiet=yes
loglevel=3
dnssec=off
query-local-address=127.0.0.1
security-poll-suffix=
EOF
    echo "pdns_recursor --config-dir=$WORK/pdns"
}
cmd_dnsmasq() {
    echo "dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --no-poll --server=127.0.0.1#$KNOT_PORT \
--listen-address=127.0.0.1 --bind-interfaces --port=$PORT --cache-size=100000 --dns-forward-max=1000 \
--pid-file= --user=root --log-facility=-"
}
cmd_dnsdist() {
    {
        echo "setLocal('127.0.0.1:$PORT', {reusePort=true})"
        [ "$1" = 2 ] && echo "addLocal('127.0.0.1:$PORT', {reusePort=true})"
        echo "newServer({address='127.0.0.1:$KNOT_PORT', checkInterval=3600})"
        echo "pc = newPacketCache(200000, {maxTTL=86400, minTTL=0, numberOfShards=16})"
        echo "getPool(''):setCache(pc)"
        echo "setACL('127.0.0.0/8')"
        # No security-status poll: it would query the system resolver.
        echo "setSecurityPollSuffix('')"
    } > "$WORK/dnsdist.conf"
    echo "dnsdist --supervised --disable-syslog -C $WORK/dnsdist.conf"
}
cmd_extra() {
    local c="${EXTRA_CMDS[$2]}"
    c="${c//\{PORT\}/$PORT}"; c="${c//\{UPSTREAM\}/127.0.0.1:$KNOT_PORT}"
    c="${c//\{COREFILE\}/$COREFILE}"; c="${c//\{WORKERS\}/$1}"
    echo "$c"
}

server_cmd() { # name workers
    if [ -n "${EXTRA_CMDS[$1]+x}" ]; then cmd_extra "$2" "$1"; else "cmd_$1" "$2"; fi
}

cpu_ticks() { # utime + stime of a pid (all its threads)
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
# Nanoseconds on CPU of all live threads of a pid (exact, where ticks are 10 ms); empty when
# the kernel has no schedstat.
cpu_ns() {
    [ -r "/proc/$1/schedstat" ] || return 0
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}
# "tid ns" for each live thread of a pid (for how evenly a phase's CPU was spread).
thread_ns() { for t in /proc/"$1"/task/*; do echo "${t##*/} $(awk '{ print $1 }' "$t/schedstat" 2>/dev/null)"; done; }
# Voluntary and involuntary context switches, summed over all threads (/proc/<pid>/status
# counts the main thread only).
ctx_switches() { # pid -> "voluntary involuntary"
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '
        /^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 }
        END { print v + 0, n + 0 }'
}
hwm_kb() { awk '/VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$RAW"; } # server rep metric value

start_server() { # name workers cpus
    local cmd; cmd="$(server_cmd "$1" "$2")"
    # The probe starts first (interpreter start-up is not counted) and prints the wall-clock
    # nanoseconds of the first answer; cold start = that minus the moment before exec.
    local pout="$WORK/probe.out" ppid t0 t1
    : > "$pout"
    $PY "$HERE/probe.py" $PORT "a0.$ZONE" 30 > "$pout" &
    ppid=$!
    for _ in $(seq 500); do [ -s "$pout" ] && break; sleep 0.01; done
    t0=$(date +%s%N)
    # shellcheck disable=SC2086
    taskset -c "$3" $cmd > "$WORK/$1.log" 2>&1 &
    SERVER_PID=$!
    wait "$ppid" || true
    t1=$(tail -n 1 "$pout")
    COLD_MS=-1
    [ "${t1:--1}" != "-1" ] && COLD_MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
    if [ "$COLD_MS" = "-1" ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "$1 did not start:"; tail -20 "$WORK/$1.log" >&2
        stop_server; return 1
    fi
}
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# dnsperf wrapper: prints "completed lost qps"; extra args pass through.
perf_run() { # cpus datafile outfile dnsperf-args...
    local cpus="$1" data="$2" out="$3"; shift 3
    taskset -c "$cpus" dnsperf -s 127.0.0.1 -p $PORT -d "$data" -t 2 "$@" > "$out" 2>&1 || true
    local done lost qps
    done=$(awk '/Queries completed:/ { print $3 }' "$out"); lost=$(awk '/Queries lost:/ { print $3 }' "$out")
    qps=$(awk '/Queries per second:/ { print $4 }' "$out")
    echo "${done:-0} ${lost:-0} ${qps:-0}"
}

# Runs one measured phase: records answered, lost, qps, CPU µs/query and context switches per
# query (voluntary, involuntary, total) for the server.
measured() { # server rep phase cpus datafile dnsperf-args...
    local s="$1" rep="$2" phase="$3" cpus="$4" data="$5"; shift 5
    local c0 c1 n0 n1 v0 i0 v1 i1 res done lost qps cpu
    thread_ns "$SERVER_PID" > "$WORK/threads0"
    c0=$(cpu_ticks "$SERVER_PID"); n0=$(cpu_ns "$SERVER_PID")
    read -r v0 i0 <<< "$(ctx_switches "$SERVER_PID")"
    res=$(perf_run "$cpus" "$data" "$WORK/$s.$rep.$phase.out" "$@")
    c1=$(cpu_ticks "$SERVER_PID"); n1=$(cpu_ns "$SERVER_PID")
    read -r v1 i1 <<< "$(ctx_switches "$SERVER_PID")"
    thread_ns "$SERVER_PID" > "$WORK/threads1"
    read -r done lost qps <<< "$res"
    # The busiest thread's share of the phase's CPU (near 1 with two workers: one did all).
    record "$s" "$rep" "$phase.top_thread_share" "$(awk 'NR == FNR { a[$1] = $2; next }
        ($1 in a) && $2 != "" { d = $2 - a[$1]; t += d; if (d > m) m = d }
        END { printf("%.2f", (t > 0) ? m / t : 0) }' "$WORK/threads0" "$WORK/threads1")"
    record "$s" "$rep" "$phase.answered" "$done"
    record "$s" "$rep" "$phase.lost" "$lost"
    record "$s" "$rep" "$phase.qps" "$qps"
    # The rcode mix, to see that a phase measured what it meant to (answers, not errors).
    record "$s" "$rep" "$phase.rcodes" "$(awk '/Response codes:/ { $1 = ""; $2 = ""; print }' "$WORK/$s.$rep.$phase.out" | tr -s ' ' | sed 's/^ //')"
    cpu=""
    if [ "${done:-0}" -gt 0 ]; then
        # The exact figure, unless a thread ended during the phase (its time leaves the
        # per-thread sum but stays in the process's ticks): then the ticks.
        if [ -n "$n0" ] && [ -n "$n1" ] && awk -v ns="$((n1 - n0))" -v tk="$((c1 - c0))" -v t="$CLK_TCK" \
            'BEGIN { exit !(ns >= 0 && tk * 1e9 / t <= ns * 1.1 + 2e9 / t) }'; then
            cpu=$(awk -v d="$((n1 - n0))" -v n="$done" 'BEGIN { printf "%.2f", d / 1e3 / n }')
        else
            cpu=$(awk -v d="$((c1 - c0))" -v n="$done" -v t="$CLK_TCK" 'BEGIN { printf "%.2f", d * 1e6 / t / n }')
        fi
        record "$s" "$rep" "$phase.cpu_us" "$cpu"
        record "$s" "$rep" "$phase.vcsw_per_q" "$(awk -v d="$((v1 - v0))" -v n="$done" 'BEGIN { printf "%.4f", d / n }')"
        record "$s" "$rep" "$phase.ivcsw_per_q" "$(awk -v d="$((i1 - i0))" -v n="$done" 'BEGIN { printf "%.4f", d / n }')"
        record "$s" "$rep" "$phase.ctx_per_q" "$(awk -v d="$((v1 - v0 + i1 - i0))" -v n="$done" 'BEGIN { printf "%.4f", d / n }')"
    fi
    log "  $phase: answered $done lost $lost qps $qps cpu_us/q ${cpu:-n/a} ctx switches $((v1 - v0))+$((i1 - i0)) rcodes: $(awk '/Response codes:/ { $1 = ""; $2 = ""; print }' "$WORK/$s.$rep.$phase.out")"
}

latency_percentiles() { # dnsperf -v output -> p50 p90 p99 p999 in µs
    awk '$1 == ">" { print $NF * 1e6 }' "$1" | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "0 0 0 0"; exit }
            n = split("0.5 0.9 0.99 0.999", p, " ")
            for (i = 1; i <= n; i++) { k = int(p[i] * NR); if (k < 1) k = 1; printf "%.0f ", v[k] }
            print ""
        }'
}

profile_phase() { # phase datafile dnsperf-args...
    local phase="$1" data="$2"; shift 2
    local data_file="$OUT/perf.$phase.data" ppid
    perf record -e cpu-clock -F 4000 -g -p "$SERVER_PID" -o "$data_file" > "$WORK/perf.$phase.log" 2>&1 &
    ppid=$!
    sleep 0.5
    perf_run $LOAD_CPU "$data" "$WORK/profile.$phase.out" "$@"
    kill -INT "$ppid" 2>/dev/null || true
    wait "$ppid" 2>/dev/null || true
    perf report -i "$data_file" --stdio --no-children --sort dso,symbol --percent-limit 0.7 -g none \
        > "$OUT/perf.$phase.txt" 2>/dev/null || true
    perf report -i "$data_file" --stdio --no-children --sort dso --percent-limit 0.5 -g none \
        > "$OUT/perf.$phase.dso.txt" 2>/dev/null || true
    log "  profile $phase: $OUT/perf.$phase.txt"
}

if [ "$PROFILE" = 1 ]; then
    if perf record -e cpu-clock -o "$WORK/perf.test" -- true > /dev/null 2>&1; then
        start_server nodecache 1 $SERVER_CPU || exit 1
        profile_phase miss "$WORK/all.txt" -n 1 -l $MISS_LIMIT -q 100
        perf_run $LOAD_CPU "$WORK/hit.txt" "$WORK/warm.out" -n 2 -l 30 -q 50 > /dev/null
        profile_phase hit "$WORK/hit.txt" -l $HIT_SECS -q 200
        stop_server
    else
        log "perf unusable here; using callgrind on a short hit run"
        cmd="$(server_cmd nodecache 1)"
        # shellcheck disable=SC2086
        taskset -c $SERVER_CPU valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" $cmd \
            > "$WORK/callgrind.log" 2>&1 &
        SERVER_PID=$!
        sleep 5
        perf_run $LOAD_CPU "$WORK/hit.txt" "$WORK/cg.out" -n 20 -l 30 -q 20 > /dev/null
        stop_server
        callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | head -60 > "$OUT/callgrind.txt" || true
    fi
    exit 0
fi

ALL_SERVERS="$SERVERS ${EXTRA_NAMES[*]:-}"
for s in $ALL_SERVERS; do
    if [ "$s" = echo ] && [ ! -x /tmp/nodecache-bench-echo ]; then
        rustc -O "$HERE/udp_echo.rs" -o /tmp/nodecache-bench-echo
    fi
done

for rep in $(seq "$REPS"); do
    for s in $ALL_SERVERS; do
        log "== $s (rep $rep/$REPS)"
        # --- one worker, pinned.
        start_server "$s" 1 $SERVER_CPU || { record "$s" "$rep" failed 1; continue; }
        record "$s" "$rep" cold_start_ms "$COLD_MS"
        log "  cold start ${COLD_MS} ms (pid $SERVER_PID)"
        # Mostly-miss pass: each of the names once (a0 was already asked by the probe).
        measured "$s" "$rep" miss $LOAD_CPU "$WORK/all.txt" -n 1 -l $MISS_LIMIT -q 100
        record "$s" "$rep" rss_after_miss_kb "$(hwm_kb "$SERVER_PID")"
        # Warm-up: the hit set twice.
        perf_run $LOAD_CPU "$WORK/hit.txt" "$WORK/$s.$rep.warm.out" -n 2 -l 30 -q 50 > /dev/null
        # Cache hits at the highest rate dnsperf reaches.
        measured "$s" "$rep" hit $LOAD_CPU "$WORK/hit.txt" -l $HIT_SECS -q 200
        # Cache hits over TCP: four connections, queries pipelined on each.
        measured "$s" "$rep" tcphit $LOAD_CPU "$WORK/hit.txt" -l $HIT_SECS -q 200 -c 4 -m tcp
        # Fixed rate without -v: CPU and wake-ups per query at that rate (-v writes a line per
        # query and changes dnsperf's send/receive pattern, so it is not used for these).
        measured "$s" "$rep" fixed $LOAD_CPU "$WORK/hit.txt" -l $LAT_SECS -Q $LAT_QPS -q 500
        # Fixed rate, per-query latencies.
        measured "$s" "$rep" lat $LOAD_CPU "$WORK/hit.txt" -l $LAT_SECS -Q $LAT_QPS -q 500 -v
        read -r p50 p90 p99 p999 <<< "$(latency_percentiles "$WORK/$s.$rep.lat.out")"
        record "$s" "$rep" lat_p50_us "$p50"; record "$s" "$rep" lat_p90_us "$p90"
        record "$s" "$rep" lat_p99_us "$p99"; record "$s" "$rep" lat_p999_us "$p999"
        log "  latency at $LAT_QPS QPS: p50 $p50 p90 $p90 p99 $p99 p99.9 $p999 µs"
        record "$s" "$rep" rss_peak_kb "$(hwm_kb "$SERVER_PID")"
        rm -f "$WORK/$s.$rep.lat.out"
        stop_server

        # --- two workers on both CPUs (dnsmasq and the echo floor are single-threaded anyway).
        start_server "$s" 2 0,1 || { record "$s" "$rep" failed2 1; continue; }
        perf_run 0,1 "$WORK/hit.txt" "$WORK/$s.$rep.warm2.out" -n 2 -l 30 -q 50 > /dev/null
        # Sixteen client sockets: SO_REUSEPORT spreads datagrams by source address and port,
        # and two were often hashed to the same listener socket, leaving one worker idle.
        measured "$s" "$rep" hit2 0,1 "$WORK/hit.txt" -l $TWO_SECS -q 200 -T 2 -c 16
        stop_server
    done
done

# ---------------------------------------------------------------------------------------------
# Summary: median and min-max over repetitions.
python3 - "$RAW" "$OUT/summary.md" "$LAT_QPS" "$NAMES" <<'EOF'
import collections, statistics, sys
raw, out, lat_qps, names = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = collections.defaultdict(lambda: collections.defaultdict(list))
per_rep = collections.defaultdict(dict)
order = []
for line in open(raw):
    s, rep, metric, value = line.rstrip("\n").split("\t")
    if s not in order:
        order.append(s)
    try:
        data[s][metric].append(float(value))
        per_rep[(s, rep)][metric] = float(value)
    except ValueError:
        pass
# Two workers' CPU per hit over one worker's, per repetition (both from the same repetition).
for (s, rep), m in per_rep.items():
    if m.get("hit.cpu_us") and "hit2.cpu_us" in m:
        data[s]["hit2_ratio"].append(m["hit2.cpu_us"] / m["hit.cpu_us"])
def med(s, m):
    v = data[s].get(m)
    return statistics.median(v) if v else None
def cell(s, m, fmt="{:.2f}"):
    v = data[s].get(m)
    if not v:
        return "n/a"
    med = statistics.median(v)
    if len(v) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(v))}–{fmt.format(max(v))})"
LOST_PHASES = ("miss", "hit", "tcphit", "fixed", "lat", "hit2")
def lost_totals(s):
    reps = sorted({rep for (x, rep) in per_rep if x == s})
    return [sum(per_rep[(s, r)].get(p + ".lost", 0) for p in LOST_PHASES) for r in reps]
def lost(s):
    tot = lost_totals(s)
    return f"{int(statistics.median(tot))} (max {int(max(tot))})" if tot else "n/a"
for s in order:
    data[s]["rss_after_miss_mib"] = [x / 1024 for x in data[s].get("rss_after_miss_kb", [])]
    data[s]["rss_peak_mib"] = [x / 1024 for x in data[s].get("rss_peak_kb", [])]
qk = f"{lat_qps / 1000:g}k"
cols = [
    ("cache-hit CPU µs/query", "hit.cpu_us", "{:.2f}"),
    ("mostly-miss CPU µs/query", "miss.cpu_us", "{:.2f}"),
    ("TCP cache-hit CPU µs/query", "tcphit.cpu_us", "{:.2f}"),
    (f"fixed-rate ({qk} q/s) CPU µs/query", "fixed.cpu_us", "{:.2f}"),
    (f"wake-ups (ctx switches)/query at {qk} q/s", "fixed.ctx_per_q", "{:.3f}"),
    (f"p99 µs at {qk} q/s (hits)", "lat_p99_us", "{:.0f}"),
    ("2-worker/1-worker hit CPU", "hit2_ratio", "{:.2f}"),
    (f"peak RSS after {names // 1000}k names (MiB)", "rss_after_miss_mib", "{:.1f}"),
]
lines = ["| server | " + " | ".join(c[0] for c in cols) + " | lost queries (all phases) |",
         "|---" * (len(cols) + 2) + "|"]
for s in order:
    lines.append("| " + " | ".join([s] + [cell(s, m, fmt) for _, m, fmt in cols] + [lost(s)]) + " |")
lines += ["", "Details (median, min–max):", "",
          "| server | cold start ms | miss QPS | hit QPS (1 worker) | hit QPS (2 workers) | "
          "2-worker CPU µs/query | 2-worker busiest thread's CPU share | ctx switches/query hit | ctx switches/query miss | "
          f"voluntary/involuntary per query at {qk} | CPU µs/query of the -v run | "
          "p50 µs | p90 µs | p99.9 µs | peak RSS end (MiB) |",
          "|---" * 15 + "|"]
for s in order:
    vi = f"{cell(s, 'fixed.vcsw_per_q', '{:.3f}')} / {cell(s, 'fixed.ivcsw_per_q', '{:.3f}')}"
    lines.append("| " + " | ".join([s, cell(s, "cold_start_ms", "{:.0f}"), cell(s, "miss.qps", "{:.0f}"),
        cell(s, "hit.qps", "{:.0f}"), cell(s, "hit2.qps", "{:.0f}"), cell(s, "hit2.cpu_us"),
        cell(s, "hit2.top_thread_share"),
        cell(s, "hit.ctx_per_q", "{:.3f}"), cell(s, "miss.ctx_per_q", "{:.3f}"), vi, cell(s, "lat.cpu_us"),
        cell(s, "lat_p50_us", "{:.0f}"), cell(s, "lat_p90_us", "{:.0f}"), cell(s, "lat_p999_us", "{:.0f}"),
        cell(s, "rss_peak_mib", "{:.1f}")]) + " |")

# Issue 15's targets for nodecache, against the peers of this run (medians over repetitions).
NC = "nodecache"
peers = [s for s in order if s not in (NC, "echo")]
def peer_best(m):
    vals = [(med(p, m), p) for p in peers if med(p, m) is not None]
    return min(vals) if vals else None
def verdict(ok):
    return "PASS" if ok else "FAIL"
targets = []
def against(name, metric, peer, factor, unit, fmt):
    mine = med(NC, metric)
    ref = med(peer, metric) if peer in peers else None
    if mine is None or ref is None:
        why = f"{peer} not in this run" if ref is None and peer not in peers else "no figure"
        targets.append(f"- n/a  {name}: {why}")
        return
    limit = factor * ref
    targets.append(f"- {verdict(mine <= limit)} {name}: nodecache {fmt.format(mine)} {unit} vs "
                   f"{factor:g} × {peer} {fmt.format(ref)} = {fmt.format(limit)}")
def against_best(name, metric, factor, unit, fmt):
    mine, best = med(NC, metric), peer_best(metric)
    if mine is None or best is None:
        targets.append(f"- n/a  {name}: {'no peer in this run' if best is None else 'no figure'}")
        return
    limit = factor * best[0]
    targets.append(f"- {verdict(mine <= limit)} {name}: nodecache {fmt.format(mine)} {unit} vs "
                   f"{factor:g} × best peer ({best[1]}) {fmt.format(best[0])} = {fmt.format(limit)}")
if NC in order:
    against("hit CPU per query ≤ 0.7 × unbound's", "hit.cpu_us", "unbound", 0.7, "µs", "{:.2f}")
    against("miss CPU per query ≤ 0.9 × dnsdist's", "miss.cpu_us", "dnsdist", 0.9, "µs", "{:.2f}")
    against_best(f"p99 at {qk} q/s ≤ 0.7 × the best peer's", "lat_p99_us", 0.7, "µs", "{:.0f}")
    rss = med(NC, "rss_after_miss_mib")
    targets.append(f"- n/a  peak RSS after {names // 1000}k names ≤ 12 MiB: no figure" if rss is None else
                   f"- {verdict(rss <= 12)} peak RSS after {names // 1000}k names ≤ 12 MiB: nodecache {rss:.1f} MiB"
                   + ("" if names >= 100000 else f" (only {names} names in this run)"))
    against_best(f"CPU per query at a fixed {qk} q/s (no -v) ≤ the best peer's", "fixed.cpu_us", 1.0, "µs",
                 "{:.2f}")
    r = med(NC, "hit2_ratio")
    targets.append("- n/a  two workers' CPU per hit ≤ 1.15 × one worker's: no figure" if r is None else
                   f"- {verdict(r <= 1.15)} two workers' CPU per hit ≤ 1.15 × one worker's: "
                   f"{r:.2f} × ({cell(NC, 'hit2.cpu_us')} vs {cell(NC, 'hit.cpu_us')} µs)")
    tot = lost_totals(NC)
    targets.append("- n/a  zero lost queries: no figure" if not tot else
                   f"- {verdict(max(tot) == 0)} zero lost queries: {int(sum(tot))} lost over {len(tot)} "
                   f"repetition(s) ({', '.join(LOST_PHASES)})")
    lines += ["", "Targets (issue 15; nodecache against the peers of this run, medians):", ""] + targets
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
log "raw numbers: $RAW; summary: $OUT/summary.md"
