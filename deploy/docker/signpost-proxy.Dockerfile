# syntax=docker/dockerfile:1
# The transparent proxy `signpost-proxy`: data plane on 8080, /healthz, /readyz and /metrics on 9494.
# Built in Rust's Debian bookworm image; run FROM scratch on a distroless-style root file system
# (deploy/docker/rootfs.sh: the binary, the C libraries it links, CA certificates, user 65532).
#
#   docker build -f deploy/docker/signpost-proxy.Dockerfile -t signpost/signpost-proxy:0.1.0 .
#
# The build context is the repository's root (.dockerignore keeps the workspace's sources only).

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# The registry and the target directory are BuildKit caches: rebuilds only compile what changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p signpost-proxy --bin signpost-proxy \
    && sh deploy/docker/rootfs.sh target/release/signpost-proxy /rootfs

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENV SIGNPOST_PROXY_LISTEN=0.0.0.0:8080 SIGNPOST_PROXY_ADMIN_LISTEN=0.0.0.0:9494
EXPOSE 8080 9494
ENTRYPOINT ["/usr/local/bin/signpost-proxy"]

