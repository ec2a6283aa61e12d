# syntax=docker/dockerfile:1
#
# nodecache images. Every target runs /node-cache (same flags as k8s-dns-node-cache).
#   docker build --target classic -t nodecache:classic .   # hostNetwork + iptables mode (default)
#   docker build --target lrp     -t nodecache:lrp .       # Cilium Local Redirect Policy mode
#   RUSTFLAGS="-C target-feature=+crt-static" \
#     cargo build --release --target x86_64-unknown-linux-gnu --bin node-cache
#   docker build --target static  -t nodecache:static .    # wraps that locally built binary
# .ci/image.sh builds and smoke-tests the static target with buildah/podman.

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

# ---- build the binary ----------------------------------------------------------------
# The `image` cargo profile is `release` without debug info and with symbols stripped.
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile image --locked --bin node-cache \
 && install -D -m 0755 target/image/node-cache /out/node-cache

# ---- an empty root with the directories node-cache writes to --------------------------
FROM busybox:stable AS rootfs
RUN mkdir -p /out/etc/coredns /out/tmp && chmod 1777 /out/tmp

# ---- static: a locally built, statically linked (glibc crt-static) binary on scratch ---
# Needs no base image, so it builds offline. STATIC_BINARY may point at another profile,
# e.g. target/x86_64-unknown-linux-gnu/debug/node-cache (.dockerignore lets both through).
FROM scratch AS static
ARG STATIC_BINARY=target/x86_64-unknown-linux-gnu/release/node-cache
COPY ${STATIC_BINARY} /node-cache
COPY corefiles/node-local-dns.Corefile.base /etc/coredns/Corefile.base
# WORKDIR creates the directory: /tmp for -pidfile and -conf /tmp/Corefile (runs as root).
WORKDIR /tmp
WORKDIR /
EXPOSE 53/udp 53/tcp 8080/tcp 9253/tcp 9353/tcp
ENTRYPOINT ["/node-cache"]

# ---- lrp: minimal runtime, no iptables (-setupinterface=false -setupiptables=false) ----
FROM gcr.io/distroless/cc-debian12 AS lrp
COPY --from=rootfs /out/tmp /tmp
COPY --from=builder /out/node-cache /node-cache
COPY corefiles/cilium-lrp.Corefile.base /etc/coredns/Corefile.base
EXPOSE 53/udp 53/tcp 8080/tcp 9253/tcp 9353/tcp
ENTRYPOINT ["/node-cache"]

# ---- classic: with iptables/ip6tables for the NOTRACK rules (default target) -----------
# The reference image uses distroless-iptables, whose wrapper picks the legacy or nft
# backend to match the host; here pick it with update-alternatives if your nodes use legacy:
#   docker build --build-arg IPTABLES_MODE=legacy --target classic .
FROM debian:${DEBIAN_RELEASE}-slim AS classic
ARG IPTABLES_MODE=nft
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && update-alternatives --set iptables /usr/sbin/iptables-${IPTABLES_MODE} \
 && update-alternatives --set ip6tables /usr/sbin/ip6tables-${IPTABLES_MODE}
COPY --from=builder /out/node-cache /node-cache
COPY corefiles/node-local-dns.Corefile.base /etc/coredns/Corefile.base
EXPOSE 53/udp 53/tcp 8080/tcp 9253/tcp 9353/tcp
ENTRYPOINT ["/node-cache"]
