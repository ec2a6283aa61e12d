#!/usr/bin/env bash
# DNS loss around a restart of the server (issue 14).
#
# An upstream (bench/restart_load.rs `upstream`) answers every A query; the server forwards to
# it with `cache 30`. Per run: start the server, prime its cache with the 2,000 names, send
# `n<i>.bench.test. A` at a fixed rate for 12 s and restart the server 4 s in, then count.
# Every query sent counts: lost = no reply within 1 s (or a failed send); SERVFAIL is
# counted separately (it is an answer). Also: the longest stretch with no reply at all while
# sending, and the queries the upstream saw in the 2 s after the new process was started.
#
# Modes: stop-start  SIGTERM the old process, wait for it to exit, start the new one.
#        surge       start the new one, wait until it is ready, then SIGTERM the old one.
#        none        no restart (a control: what the counting gives without one).
# Both instances use the same Corefile except the `ready` port (15456 / 15457 in turn), so the
# script can tell when the *new* one is ready; DNS and health ports are shared (SO_REUSEPORT).
#
# All traffic is on 127.0.0.1, ports 15453-15457. Results go to bench/out/restart-<time>/.
#
# Usage: bench/restart.sh [--rates "5000 20000"] [--runs 3] [--modes "none stop-start surge"]
#                         [--statedir DIR] [--lameduck 2s] [--extra 'NAME=CMD'] [--no-nodecache]
#                         [--classic]
#   Default modes: stop-start surge.
#   NODECACHE=path overrides the binary (default $CARGO_TARGET_DIR or target/, release).
#   --statedir DIR: every nodecache instance gets `-statedir DIR/<run>` (a fresh directory per
#            run, shared by the old and the new instance); skipped with a message if the binary
#            does not know the flag.
#   --lameduck D: `health ... { lameduck D }` in the Corefile.
#   --extra: another server measured the same way; CMD may use {corefile} and {port}, e.g.
#            --extra 'coredns=coredns -conf {corefile}'
#   --classic: also node-cache (NODE_CACHE=path, default next to nodecache) in classic mode,
#            inside a network namespace this script creates (root, `ip`, `iptables`, `ss`;
#            skipped with a message otherwise): the shipped base Corefile filled as the
#            DaemonSet does, -localip 169.254.20.10,10.0.0.10, the upstream on 127.0.0.1:53 in
#            the namespace, the load from 169.254.20.10. The new instance counts as ready when
#            it has bound 169.254.20.10:53 (the base Corefile has no `ready`). Extra flags for
#            it: CLASSIC_ARGS='-skipteardown' etc.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

RATES="5000 20000"
RUNS=3
MODES="stop-start surge"
STATEDIR=""
LAMEDUCK=""
WITH_NODECACHE=1
CLASSIC=0
declare -a EXTRA_NAMES=()
declare -A EXTRA_CMDS=()
NODECACHE="${NODECACHE:-${CARGO_TARGET_DIR:-$ROOT/target}/release/nodecache}"
while [ $# -gt 0 ]; do
    case "$1" in
        --rates) RATES="$2"; shift ;;
        --runs) RUNS="$2"; shift ;;
        --modes) MODES="$2"; shift ;;
        --statedir) STATEDIR="$2"; shift ;;
        --lameduck) LAMEDUCK="$2"; shift ;;
        --extra)
            name="${2%%=*}"; cmd="${2#*=}"
            EXTRA_NAMES+=("$name"); EXTRA_CMDS[$name]="$cmd"; shift ;;
        --no-nodecache) WITH_NODECACHE=0 ;;
        --classic) CLASSIC=1 ;;
        -h|--help) sed -n 2,36p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
for m in $MODES; do
    case "$m" in stop-start|surge|none) ;; *) echo "unknown mode: $m" >&2; exit 2 ;; esac
done

DURATION=12        # seconds of load per run
RESTART_AT=4       # seconds into the load
NAMES=2000
PORT=15453
UPPORT=15454
HPORT=15455
RPORTS=(15456 15457)
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
now_ms() { date +%s%3N; }

WORK="$(mktemp -d /tmp/nodecache-restart.XXXXXX)"
OUT="$HERE/out/restart-$(date -u +%Y%m%dT%H%M%S)"
mkdir -p "$OUT"
UP_PID=""
CUP_PID=""
NETNS=""
declare -a PIDS=()
cleanup() {
    for p in "${PIDS[@]}" $UP_PID $CUP_PID; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$NETNS" ] && ip netns del "$NETNS" 2>/dev/null || true
    cp "$WORK"/*.log "$OUT/" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

LOAD="$WORK/restart_load"
rustc -O "$HERE/restart_load.rs" -o "$LOAD"
if [ "$WITH_NODECACHE" = 1 ] && [ ! -x "$NODECACHE" ]; then
    log "building $NODECACHE"
    (cd "$ROOT" && cargo build --release --bins)
fi

# Corefile for the instance whose ready endpoint is on port $1.
corefile() {
    local f="$WORK/Corefile.$1" hblock=""
    [ -n "$LAMEDUCK" ] && hblock=" {
        lameduck $LAMEDUCK
    }"
    cat > "$f" <<EOF
.:$PORT {
    bind 127.0.0.1
    cache 30
    forward . 127.0.0.1:$UPPORT
    health 127.0.0.1:$HPORT$hblock
    ready 127.0.0.1:$1
}
EOF
    echo "$f"
}

"$LOAD" upstream --port $UPPORT --timeline "$WORK/upstream.tl" > "$WORK/upstream.log" 2>&1 &
UP_PID=$!

# Where the servers run and how they are reached; the classic section changes these.
NSX=()                      # command prefix (ip netns exec NAME)
TARGET="127.0.0.1:$PORT"
LOAD_BIND="127.0.0.1:0"
UPTL="$WORK/upstream.tl"
READY=http                  # http: GET /ready on the instance's port; bound: ss shows its socket
PRESTART=""                 # run before each start

# Starts server template $1 (with {corefile} and {port}) with ready port $2; sets STARTED.
start_server() {
    local cf cmd
    cf="$(corefile "$2")"
    cmd="${1//\{corefile\}/$cf}"; cmd="${cmd//\{port\}/$PORT}"
    [ -n "$PRESTART" ] && eval "$PRESTART"
    "${NSX[@]}" bash -c "exec $cmd" >> "$WORK/server-$2.log" 2>&1 &
    STARTED=$!
    PIDS+=("$STARTED")
}

# Waits until the ready endpoint on port $2 of process $1 answers 200 (at most 20 s).
wait_ready() {
    local i
    for i in $(seq 1 2000); do
        kill -0 "$1" 2>/dev/null || { echo "server $1 exited; log:" >&2; tail -5 "$WORK/server-$2.log" >&2; return 1; }
        if [ "$READY" = http ]; then
            [ "$(curl -s -o /dev/null -w '%{http_code}' -m 1 "http://127.0.0.1:$2/ready" 2>/dev/null)" = 200 ] && return 0
        else
            "${NSX[@]}" ss -Hulpn "src $TARGET" 2>/dev/null | grep -q "pid=$1," && return 0
        fi
        sleep 0.01
    done
    echo "server $1 not ready on :$2 after 20 s" >&2; return 1
}

# SIGTERMs $1 and waits for it to exit (SIGKILL after 30 s); polls every 10 ms.
stop_server() {
    local i state
    kill -TERM "$1" 2>/dev/null || true
    for i in $(seq 1 3000); do
        state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || echo gone)"
        [ "$state" = Z ] || [ "$state" = gone ] && break
        sleep 0.01
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# Upstream queries in [$1, $1 + 2000 ms] from the upstream's cumulative timeline.
upstream_2s() {
    awk -v a="$1" -v b="$(( $1 + 2000 ))" '
        $1 <= a { c0 = $2 } $1 >= b && !done { c1 = $2; done = 1 }
        END { if (done) print c1 - c0; else print "na" }' "$UPTL"
}

# key=value from a load summary line.
kv() { tr ' ' '\n' <<< "$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }

RAW="$OUT/raw.tsv"
printf 'server\tmode\trate\trun\tsent\tlost\tservfail\tother_rcode\tsend_errors\tlate\tgap_ms\tgap_from_mark_ms\tgap_after_mark_ms\tlost_first_ms\tlost_last_ms\tupstream_2s\tnew_start_ms\tnew_ready_ms\tsigterm_ms\told_exit_ms\tprime_answered\n' > "$RAW"

# One measurement: server label $1, template $2, mode $3, rate $4, run $5.
measure() {
    local label="$1" tmpl="$2" mode="$3" rate="$4" run="$5"
    local tag="$label-$mode-$rate-$run" old new t0 t_new t_ready t_term t_exit out prime
    if [ -n "$STATEDIR" ] && [ "$STATEDIR_OK" = 1 ] && { [ "$label" = nodecache ] || [ "$label" = node-cache-classic ]; }; then
        mkdir -p "$STATEDIR/$tag"
        tmpl="$tmpl -statedir $STATEDIR/$tag"
    fi
    start_server "$tmpl" "${RPORTS[0]}"; old=$STARTED
    wait_ready "$old" "${RPORTS[0]}" || { log "$tag: skipped, the first instance did not start"; stop_server "$old"; PIDS=(); return 0; }
    prime="$("${NSX[@]}" "$LOAD" load --server "$TARGET" --bind "$LOAD_BIND" --rate 4000 --duration "$(awk -v n=$NAMES 'BEGIN { printf "%.3f", n / 4000 }')" --names $NAMES)"
    [ "$(kv "$prime" answered)" = "$NAMES" ] || log "$tag: priming answered $(kv "$prime" answered) of $NAMES"
    rm -f "$WORK/mark"
    "${NSX[@]}" "$LOAD" load --server "$TARGET" --bind "$LOAD_BIND" --rate "$rate" --duration $DURATION --names $NAMES \
        --timeline "$OUT/timeline-$tag.tsv" --mark "$WORK/mark" > "$WORK/load.out" 2> "$WORK/load.err" &
    local load_pid=$!
    sleep $RESTART_AT
    t0=$(now_ms); echo "$t0" > "$WORK/mark"
    if [ "$mode" = none ]; then
        t_new=$t0; t_ready=$t0; t_term=$t0; t_exit=$t0; new=$old
    elif [ "$mode" = stop-start ]; then
        t_term=$(now_ms); stop_server "$old"; t_exit=$(now_ms)
        t_new=$(now_ms); start_server "$tmpl" "${RPORTS[1]}"; new=$STARTED
        wait_ready "$new" "${RPORTS[1]}" || true; t_ready=$(now_ms)
    else
        t_new=$(now_ms); start_server "$tmpl" "${RPORTS[1]}"; new=$STARTED
        wait_ready "$new" "${RPORTS[1]}" || true; t_ready=$(now_ms)
        t_term=$(now_ms); stop_server "$old"; t_exit=$(now_ms)
    fi
    wait "$load_pid" || { log "$tag: load failed: $(cat "$WORK/load.err")"; }
    out="$(cat "$WORK/load.out")"
    stop_server "$new"
    PIDS=()
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$label" "$mode" "$rate" "$run" "$(kv "$out" sent)" "$(kv "$out" lost)" "$(kv "$out" servfail)" \
        "$(kv "$out" other_rcode)" "$(kv "$out" send_errors)" "$(kv "$out" late)" "$(kv "$out" gap_ms)" \
        "$(kv "$out" gap_from_mark_ms)" "$(kv "$out" gap_after_mark_ms)" "$(kv "$out" lost_first_from_mark_ms)" "$(kv "$out" lost_last_from_mark_ms)" \
        "$(upstream_2s "$t_new")" $((t_new - t0)) $((t_ready - t0)) $((t_term - t0)) $((t_exit - t0)) \
        "$(kv "$prime" answered)" >> "$RAW"
    log "$tag: $(tail -n 1 "$RAW" | cut -f5-16)"
}

STATEDIR_OK=0
declare -a SERVERS=()
declare -A TEMPLATES=()
if [ "$WITH_NODECACHE" = 1 ]; then
    SERVERS+=(nodecache); TEMPLATES[nodecache]="$NODECACHE -conf {corefile}"
    if [ -n "$STATEDIR" ]; then
        mkdir -p "$STATEDIR"
        # A binary that does not know the flag exits at once with a usage error.
        "$NODECACHE" -conf "$(corefile "${RPORTS[0]}")" -statedir "$STATEDIR/probe" > "$WORK/statedir-probe.log" 2>&1 &
        probe=$!
        sleep 1
        if kill -0 "$probe" 2>/dev/null; then
            STATEDIR_OK=1; stop_server "$probe"
        else
            wait "$probe" 2>/dev/null || true
            echo "nodecache rejects -statedir ($(head -n 1 "$WORK/statedir-probe.log")); continuing without it" >&2
        fi
    fi
fi
for n in "${EXTRA_NAMES[@]}"; do SERVERS+=("$n"); TEMPLATES[$n]="${EXTRA_CMDS[$n]}"; done

log "results in $OUT"
for s in "${SERVERS[@]}"; do
    for mode in $MODES; do
        for rate in $RATES; do
            for run in $(seq 1 "$RUNS"); do
                measure "$s" "${TEMPLATES[$s]}" "$mode" "$rate" "$run"
            done
        done
    done
done

# Classic mode: node-cache managing its interface and iptables rules, in a namespace.
classic_setup() {
    local nc="${NODE_CACHE:-$(dirname "$NODECACHE")/node-cache}" d="$WORK/classic"
    [ "$(id -u)" = 0 ] || { echo "--classic: skipped, needs root" >&2; return 1; }
    for c in ip iptables ss; do
        command -v $c >/dev/null || { echo "--classic: skipped, \`$c\` not installed" >&2; return 1; }
    done
    [ -x "$nc" ] || (cd "$ROOT" && cargo build --release --bins)
    NETNS="ncrestart-$$"
    ip netns add "$NETNS" || { echo "--classic: skipped, cannot create a network namespace" >&2; NETNS=""; return 1; }
    ip netns exec "$NETNS" ip link set lo up
    # This VM's kernel may lack dummy links: node-cache then makes the interface a bridge itself.
    if ! ip netns exec "$NETNS" ip link add ncprobe type dummy 2>/dev/null; then
        log "--classic: no dummy links here; node-cache falls back to a bridge"
    else
        ip netns exec "$NETNS" ip link del ncprobe
    fi
    mkdir -p "$d/kube-dns"
    sed -e 's/__PILLAR__DNS__DOMAIN__/cluster.local/g' -e 's/__PILLAR__LOCAL__DNS__/169.254.20.10/g' \
        -e 's/__PILLAR__DNS__SERVER__/10.0.0.10/g' "$ROOT/corefiles/node-local-dns.Corefile.base" > "$d/Corefile.base"
    echo '["127.0.0.1"]' > "$d/kube-dns/upstreamNameservers"
    ip netns exec "$NETNS" "$LOAD" upstream --port 53 --timeline "$WORK/upstream-classic.tl" > "$WORK/upstream-classic.log" 2>&1 &
    CUP_PID=$!
    NSX=(ip netns exec "$NETNS")
    TARGET="169.254.20.10:53"
    LOAD_BIND="169.254.20.10:0"
    UPTL="$WORK/upstream-classic.tl"
    READY=bound
    CLASSIC_TMPL="env KUBE_DNS_UPSTREAM_SERVICE_HOST=127.0.0.1 $nc -localip 169.254.20.10,10.0.0.10 -conf $d/Corefile -basecorefile $d/Corefile.base -kubednscm $d/kube-dns -upstreamsvc kube-dns-upstream ${CLASSIC_ARGS:-}"
}
if [ "$CLASSIC" = 1 ] && classic_setup; then
    for mode in $MODES; do
        for rate in $RATES; do
            for run in $(seq 1 "$RUNS"); do
                measure node-cache-classic "$CLASSIC_TMPL" "$mode" "$rate" "$run"
            done
        done
    done
fi

# Table and medians (times in ms; from_mark = relative to the start of the restart).
{
    echo "## per run"
    cut -f1-7,9,11-20 "$RAW" | column -t -s $'\t'
    echo
    echo "## medians (min-max)"
    awk -F'\t' 'NR > 1 {
        k = $1 "\t" $2 "\t" $3; if (!(k in n)) order[++m] = k
        i = ++n[k]; sent[k, i] = $5; lost[k, i] = $6; sf[k, i] = $7; gap[k, i] = $11; mg[k, i] = $13; up[k, i] = $16
    }
    function med(a, k, c,   v, i, j, t, lo, hi) {
        for (i = 1; i <= c; i++) v[i] = a[k, i] + 0
        for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        if (c % 2) return sprintf("%g (%g-%g)", v[(c + 1) / 2], v[1], v[c])
        return sprintf("%g (%g-%g)", (v[c / 2] + v[c / 2 + 1]) / 2, v[1], v[c])
    }
    BEGIN { OFS = "\t"; print "server", "mode", "rate", "runs", "sent", "lost", "servfail", "gap_ms", "gap_after_restart_ms", "upstream_2s" }
    END { for (o = 1; o <= m; o++) { k = order[o]
        print k, n[k], med(sent, k, n[k]), med(lost, k, n[k]), med(sf, k, n[k]), med(gap, k, n[k]), med(mg, k, n[k]), med(up, k, n[k]) } }' "$RAW" \
        | column -t -s $'\t'
} | tee "$OUT/summary.txt"
