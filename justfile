# Roomgate's everyday commands. `just --list` shows them.

# Start the server on the embedded defaults (SQLite under data/); it prints the URL to open.
run:
    cargo run --release -p roomgate-server

# The whole test suite, as CI runs it (sets up MariaDB, Redis and Chromium first).
test:
    bash .ci/test

# Formatting and lints, warnings denied.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks (figures go in docs/BENCHMARKS.md).
bench:
    cargo bench --workspace

# Redraws every headline chart of docs/BENCHMARKS.md from docs/benchmarks/headline.json.
charts:
    cargo run --release -p roomgate-loadgen -- charts

# Measures the headline figures again on this machine (fresh release servers, MariaDB and SQLite).
headline:
    bash .ci/ensure-services
    bash crates/loadgen/bench/headline.sh

# Roomgate on MySQL 8 and Redis in containers.
up:
    docker compose up --build
