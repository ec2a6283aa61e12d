#!/usr/bin/env bash
# Builds the `static` image (a crt-static node-cache on scratch) with buildah and smoke-tests it
# with podman: host network, no interface/iptables setup, a mounted base Corefile serving a
# template and whoami on a high loopback port; checks DNS answers, /health and /metrics, then
# stops it. Needs root; installs buildah/podman/runc/dig/curl with apt-get when missing.
#
# Environment: IMAGE_PROFILE (cargo profile, default dev; `release` for a shippable image),
#              KEEP_IMAGE=1 (do not remove the image at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[image.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "FAIL: $*"; exit 1; }

if [ "$(id -u)" != 0 ]; then
    log "SKIP: needs root (buildah/podman with the vfs driver and runc)"
    exit 0
fi

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v dig >/dev/null || need+=(bind9-dnsutils)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${need[*]} and no apt-get"
    log "installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

profile=${IMAGE_PROFILE:-dev}
case "$profile" in dev) outdir=debug ;; *) outdir=$profile ;; esac
triple=x86_64-unknown-linux-gnu
binary=target/$triple/$outdir/node-cache
tag=localhost/nodecache:static-ci-$$
name=nodecache-ci-$$
tmp=$(mktemp -d)
buildah=(buildah --storage-driver vfs)
podman=(podman --storage-driver vfs --runtime runc --cgroup-manager cgroupfs --events-backend file)

cleanup() {
    set +e
    "${podman[@]}" rm -f -t 0 "$name" >/dev/null 2>&1
    [ "${KEEP_IMAGE:-0}" = 1 ] || "${buildah[@]}" rmi -f "$tag" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT

t0=$SECONDS
log "building $binary (profile $profile, crt-static)"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    timeout 3600 cargo build --locked --profile "$profile" --target "$triple" --bin node-cache
if command -v readelf >/dev/null; then
    ! readelf -l "$binary" | grep -q 'Requesting program interpreter' || die "$binary is dynamically linked"
fi
log "binary built in $((SECONDS - t0))s"

t1=$SECONDS
timeout 600 "${buildah[@]}" bud --quiet --target static --build-arg "STATIC_BINARY=$binary" -t "$tag" -f Dockerfile . \
    >/dev/null || die "buildah bud failed"
log "image $tag built in $((SECONDS - t1))s"

# Ports below the ephemeral range, random per run.
dns_port=$((20000 + RANDOM % 10000))
health_port=$((dns_port + 1))
metrics_port=$((dns_port + 2))
mkdir -p "$tmp/coredns"
cat >"$tmp/coredns/Corefile.base" <<EOF
.:$dns_port {
    bind __PILLAR__LOCAL__DNS__
    template IN A example.test {
        answer "{{ .Name }} 60 IN A 192.0.2.53"
    }
    whoami
    health 127.0.0.1:$health_port
}
EOF

t2=$SECONDS
# podman's default nofile/nproc limits (and even "--ulimit host") can exceed what a sandbox
# without CAP_SYS_RESOURCE lets runc set: ask for modest limits, never above our own.
cap() { local v; v=$(ulimit "$1"); if [ "$v" = unlimited ] || [ "$v" -gt 16384 ]; then echo 16384; else echo "$v"; fi; }
nofile=$(cap -Hn)
nproc=$(cap -Hu)
"${podman[@]}" run -d --rm --name "$name" --network host \
    --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc" \
    -v "$tmp/coredns:/etc/coredns:ro" \
    "$tag" \
    -localip 127.0.0.1 -setupinterface=false -setupiptables=false \
    -conf /tmp/Corefile -basecorefile /etc/coredns/Corefile.base \
    -metrics-listen-address "127.0.0.1:$metrics_port" -pidfile /tmp/node-cache.pid >/dev/null \
    || die "podman run failed"

logs() { "${podman[@]}" logs "$name" 2>&1 | tail -n 40; }
health=""
for _ in $(seq 1 100); do
    health=$(curl -sf --max-time 2 "http://127.0.0.1:$health_port/health" || true)
    [ "$health" = OK ] && break
    sleep 0.2
done
[ "$health" = OK ] || { logs; die "/health did not answer OK"; }
log "container healthy after $((SECONDS - t2))s"

a=$(dig @127.0.0.1 -p "$dns_port" +time=2 +tries=2 +short www.example.test A)
[ "$a" = 192.0.2.53 ] || { logs; die "template answer: got '$a'"; }
who=$(dig @127.0.0.1 -p "$dns_port" +time=2 +tries=2 +tcp +noall +additional whoami.other. A)
echo "$who" | grep -q $'IN\tA\t127.0.0.1' || { logs; die "whoami answer: got '$who'"; }
echo "$who" | grep -q '_tcp' || { logs; die "whoami over TCP: got '$who'"; }
metrics=$(curl -sf --max-time 2 "http://127.0.0.1:$metrics_port/metrics") || { logs; die "/metrics failed"; }
echo "$metrics" | grep -q '^coredns_nodecache_setup_errors_total{errortype="configmap"} 0' \
    || { logs; die "setup error counter missing or non-zero"; }
log "DNS (template over UDP, whoami over TCP), /health and /metrics OK"

"${podman[@]}" stop -t 10 "$name" >/dev/null || die "podman stop failed"
log "stopped; total $((SECONDS - t0))s"
log "PASS"
