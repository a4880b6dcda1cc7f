#!/usr/bin/env bash
# The heap profile of idle members, in one command (from the workspace root):
#
#     crates/server/profiling/idle.sh [MEMBERS] [ROOM_CAPACITY]    # defaults: 2000 100
#
# Builds the server with `--features dhat-heap` (kept as target/release/roomgate-dhat; the plain
# binary is put back afterwards), starts it on a scratch SQLite database, opens MEMBERS idle
# members with `roomgate-load idle`, and once they are all in and the presence frames of their
# joins have drained, sends the server SIGUSR1: dhat writes what the heap holds at that moment to
# target/dhat-idle.json (open it in https://nnethercote.github.io/dh_view/dh_view.html), and
# profiling/dhat_summary.py prints it per member.
set -euo pipefail
members=${1:-2000}
capacity=${2:-100}
port=${PORT:-18190}
cd "$(dirname "$0")/../../.."

cargo build --release -p roomgate-loadgen
cargo build --release -p roomgate-server --features dhat-heap
cp target/release/roomgate target/release/roomgate-dhat
# The plain build relinks the unprofiled binary from its own, unchanged artifacts.
cargo build --release -p roomgate-server

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rm -f target/dhat-idle.json
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
  --room-capacity "$capacity" --server-pid "$server" --duration 30s >&2 &
load=$!
sessions() {
  curl -sf "http://127.0.0.1:$port/metrics" | awk '/^roomgate_ws_sessions /{print $2}'
}
until [ "$(sessions)" = "$members" ]; do sleep 0.5; done
sleep 5
kill -USR1 "$server"
until [ -s target/dhat-idle.json ]; do sleep 0.5; done
wait "$load" || true
kill -TERM "$server"
wait "$server" || true
python3 crates/server/profiling/dhat_summary.py target/dhat-idle.json "$members"
