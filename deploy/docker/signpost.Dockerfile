# syntax=docker/dockerfile:1
# The Signpost server: `signpost serve` on 0.0.0.0:8080, data in /data (a volume, or PostgreSQL).
# Built in Rust's Debian bookworm image; run FROM scratch on a distroless-style root file system
# (deploy/docker/rootfs.sh: the binary, the C libraries it links, CA certificates, user 65532).
#
#   docker build -f deploy/docker/signpost.Dockerfile -t signpost/signpost:0.1.0 .
#
# The build context is the repository's root (.dockerignore keeps the workspace's sources only).

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
# The registry and the target directory are BuildKit caches: rebuilds only compile what changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p signpost --bin signpost \
    && sh deploy/docker/rootfs.sh target/release/signpost /rootfs data

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
ENV SIGNPOST_LISTEN=0.0.0.0:8080 SIGNPOST_DATA_DIR=/data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/signpost"]
CMD ["serve"]
