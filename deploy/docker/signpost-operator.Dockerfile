# syntax=docker/dockerfile:1
# The operator `signpost-operator`: Destination resources to Services through the proxy; /healthz and /metrics on 9494.
# Built in Rust's Debian bookworm image; run FROM scratch on a distroless-style root file system
# (deploy/docker/rootfs.sh: the binary, the C libraries it links, CA certificates, user 65532).
#
#   docker build -f deploy/docker/signpost-operator.Dockerfile -t signpost/signpost-operator:0.1.0 .
#
# The build context is the repository's root (.dockerignore keeps the workspace's sources only).

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# The registry and the target directory are BuildKit caches: rebuilds only compile what changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p signpost-operator --bin signpost-operator \
    && sh deploy/docker/rootfs.sh target/release/signpost-operator /rootfs

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENV SIGNPOST_OPERATOR_METRICS_LISTEN=0.0.0.0:9494
EXPOSE 9494
ENTRYPOINT ["/usr/local/bin/signpost-operator"]

