# syntax=docker/dockerfile:1
# Roomgate server image: a release build in the Rust image, then only the binary in a slim
# Debian runtime. Build with `docker build -t roomgate .` or `docker compose up --build`.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and the target folder between builds, so a
# source change does not recompile every dependency. The binary is copied out of the
# cached target folder because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p roomgate-server \
    && install -D -m 0755 target/release/roomgate /out/roomgate

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --create-home roomgate
WORKDIR /app
COPY --from=build /out/roomgate /usr/local/bin/roomgate
# The embedded default database is SQLite under data/; keep it writable for that case.
RUN mkdir -p /app/data && chown roomgate:roomgate /app/data
USER roomgate
ENV ROOMGATE__SERVER__BIND=0.0.0.0:8080
EXPOSE 8080
# SIGTERM (docker stop) closes every session with 1001 and exits 0.
STOPSIGNAL SIGTERM
CMD ["roomgate"]
