# syntax=docker/dockerfile:1
#
# One image with every binary of the workspace (order-api, payment-svc, inventory-svc, shopctl,
# psp-sim, and whatever binary a new member adds); docker-compose.yml picks the service with
# `command`. Build: `docker compose build` or `docker build -t order-saga:local .`.
#
# Stages: `chef` (toolchain + cargo-chef) → `planner` (dependency recipe) → `builder`
# (dependencies first, cached until Cargo.toml/Cargo.lock change; then our crates) → `runtime`.

# Pinned to the workspace's rust-version; bookworm matches the runtime's glibc.
FROM rust:1.95-bookworm AS chef
# librdkafka and SQLite are compiled from source (rdkafka's and rusqlite's bundled builds):
# they need a C toolchain, make, perl (librdkafka's configure), pkg-config and zlib headers.
# The rust image has most of them already; installing them explicitly keeps the build honest.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential perl pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

# The recipe lists what the dependency build depends on (manifests, lock file, member layout),
# computed from the whole workspace: members are never listed here by hand.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Third-party crates (and the C libraries they bundle), built from the recipe alone: this layer
# is reused as long as no manifest or the lock file changes, which is what makes rebuilds fast.
RUN cargo chef cook --release --locked --bins --recipe-path recipe.json
COPY . .
# Every binary of every member; then copy whatever executables came out, so a new binary needs
# no edit here.
RUN cargo build --release --locked --bins \
    && mkdir -p /out \
    && find target/release -maxdepth 1 -type f -perm -u+x -exec cp {} /out/ \; \
    && ls -l /out

FROM debian:bookworm-slim AS runtime
# curl is only for the compose healthchecks (`curl -fsS …/readyz`): it tells a 503 from a 200,
# bounds the wait with --max-time, and is handy for poking a service from inside its container.
# A few MB is worth a check that anyone can read; the binaries themselves need only libc/zlib.
# ca-certificates: the roots a Postgres server's certificate is checked against with
# `sslmode=require` (a managed database's own CA goes in PGSSLROOTCERT).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# A fixed, unprivileged user. /data is created here owned by it, so a fresh named volume mounted
# there starts with that ownership and the services can write SQLite files (when run without
# Postgres, e.g. `docker run … -e ORDER_API_DB=/data/order-api.db`).
RUN groupadd --system --gid 10001 shop \
    && useradd --system --uid 10001 --gid shop --home-dir /data --shell /usr/sbin/nologin shop \
    && mkdir -p /data \
    && chown shop:shop /data
COPY --from=builder /out/ /usr/local/bin/
USER 10001:10001
WORKDIR /data
# order-api, payment-svc, inventory-svc, psp-sim (each listens where its *_ADDR says).
EXPOSE 8080 8081 8082 8090
CMD ["order-api"]
