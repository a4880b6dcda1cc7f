#!/usr/bin/env bash
# The heap profile of idle members, in one command (from the workspace root):
#
#     crates/server/profiling/idle.sh [MEMBERS] [ROOM_CAPACITY]    # defaults: 2000 100
#
# Builds the server with `--features dhat-heap` (kept as target/release/roomgate-dhat; the plain
# binary is put back afterwards), starts it on a scratch SQLite database, holds MEMBERS idle
# members with `roomgate-load idle`, stops the server gracefully so that dhat writes its profile,
# and prints what the heap held per member at its peak (profiling/dhat_summary.py). The profile
# itself stays in target/dhat-idle.json, for https://nnethercote.github.io/dh_view/dh_view.html.
set -euo pipefail
members=${1:-2000}
capacity=${2:-100}
port=${PORT:-18190}
cd "$(dirname "$0")/../../.."

cargo build --release -p roomgate-loadgen
cargo build --release -p roomgate-server --features dhat-heap
cp target/release/roomgate target/release/roomgate-dhat
# The next plain build relinks the unprofiled binary from its own, unchanged artifact.
cargo build --release -p roomgate-server

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
ROOMGATE__SERVER__BIND="127.0.0.1:$port" ROOMGATE__LOG__FILTER=warn \
  ROOMGATE__DATABASE__URL="sqlite://$scratch/roomgate.db" \
  ROOMGATE_DHAT_FILE="$PWD/target/dhat-idle.json" \
  target/release/roomgate-dhat >"$scratch/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done
target/release/roomgate-load idle --url "http://127.0.0.1:$port" --members "$members" \
  --room-capacity "$capacity" --server-pid "$server" --duration 5s >&2 || true
kill -TERM "$server"
wait "$server" || true
python3 crates/server/profiling/dhat_summary.py target/dhat-idle.json "$members"
