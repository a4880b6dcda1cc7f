#!/usr/bin/env bash
# Measures the headline figures of docs/BENCHMARKS.md on the final join path, one after the
# other on this machine, each against a fresh release server on a fresh database:
#
#   churn + bare   roomgate-load churn --messages 0 --bare-mysql (visits/s, and the same visits
#                  as bare statements in the same run, alone and as the server sends them), with
#                  the server's CPU per visit
#   storm          roomgate-load storm --concurrency 64, on MariaDB and on SQLite, alternated
#   fanout         roomgate-load fanout (200,000 deliveries/s offered)
#   idle           roomgate-load idle (the server's memory per idle member)
#
# Every run's JSON report goes to target/headline/; the summary printed at the end is what
# docs/benchmarks/headline.json records. Then `just charts` redraws the SVGs from that file.
#
# Usage: bash crates/loadgen/bench/headline.sh   (MariaDB must be up: bash .ci/ensure-services)
set -euo pipefail
cd "$(dirname "$0")/../../.."

OUT=target/headline
mkdir -p "$OUT"
PORT=18190
MYSQL_BASE=mysql://roomgate:roomgate@127.0.0.1:3306
DURATION=${HEADLINE_SECS:-20}s

cargo build --release -p roomgate-server -p roomgate-loadgen
SERVER=./target/release/roomgate
LOAD=./target/release/roomgate-load

server_pid=
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap stop_server EXIT

# start_server mysql|sqlite NAME: a release server on a fresh database called NAME.
start_server() {
    local backend=$1 name=$2 url
    if [[ $backend == mysql ]]; then
        mysql -uroomgate -proomgate -h127.0.0.1 -e "DROP DATABASE IF EXISTS $name; CREATE DATABASE $name"
        url=$MYSQL_BASE/$name
    else
        rm -rf "$OUT/$name" && mkdir -p "$OUT/$name"
        url=sqlite://$OUT/$name/roomgate.db
    fi
    ROOMGATE__SERVER__BIND=127.0.0.1:$PORT ROOMGATE__LOG__FILTER=warn \
        ROOMGATE__DATABASE__URL=$url "$SERVER" >"$OUT/$name.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && return 0
        sleep 0.1
    done
    echo "the server did not become ready; see $OUT/$name.log" >&2
    exit 1
}

# CPU seconds the server has used so far.
server_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$server_pid/stat"
}

field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }

echo "== churn and bare statements ($DURATION each)"
start_server mysql headline_churn
"$LOAD" churn --url "http://127.0.0.1:$PORT" --duration 3s --messages 0 --quiet # warm-up
before=$(server_cpu)
"$LOAD" --json --quiet churn --url "http://127.0.0.1:$PORT" --duration "$DURATION" --messages 0 \
    --bare-mysql "$MYSQL_BASE/headline_churn" >"$OUT/churn.json"
after=$(server_cpu)
stop_server
visits=$(field "$OUT/churn.json" "d['result']['joins']")
churn_cpu_ms=$(python3 -c "print(round(($after - $before) * 1000 / $visits, 3))")

echo "== storm, MariaDB and SQLite alternated (3 rounds)"
for round in 1 2 3; do
    for backend in mysql sqlite; do
        start_server $backend "headline_storm_${backend}_$round"
        "$LOAD" --json --quiet storm --url "http://127.0.0.1:$PORT" --concurrency 64 \
            >"$OUT/storm-$backend-$round.json"
        stop_server
    done
done

echo "== fanout"
start_server mysql headline_fanout
"$LOAD" --json --quiet fanout --url "http://127.0.0.1:$PORT" --duration "$DURATION" >"$OUT/fanout.json"
stop_server

echo "== idle"
start_server mysql headline_idle
"$LOAD" --json --quiet idle --url "http://127.0.0.1:$PORT" --server-pid "$server_pid" \
    --members 10000 --room-capacity 100 >"$OUT/idle.json"
stop_server

echo
echo "== summary (record in docs/benchmarks/headline.json, then: just charts)"
python3 - "$OUT" "$churn_cpu_ms" <<'PY'
import json, sys, glob
out, cpu = sys.argv[1], sys.argv[2]
churn = json.load(open(f"{out}/churn.json"))["result"]
print(f"churn visits/s {churn['joins_per_second']:.0f}, server CPU per visit {cpu} ms")
print(f"bare (floor) visits/s {churn['bare']['visits_per_second']:.0f}, churn/bare {churn['churn_to_bare']:.2f}")
if "bare_as_sent" in churn:
    print(f"bare as the server sends them visits/s {churn['bare_as_sent']['visits_per_second']:.0f}, "
          f"churn/that {churn['churn_to_bare_as_sent']:.2f}")
for backend in ("mysql", "sqlite"):
    times = [json.load(open(f))["result"]["reserve_phase_seconds"] for f in sorted(glob.glob(f"{out}/storm-{backend}-*.json"))]
    print(f"storm {backend}: reservation phase {', '.join(f'{t:.2f}' for t in times)} s")
fanout = json.load(open(f"{out}/fanout.json"))["result"]
lat = fanout["delivery_latency"]
print(f"fanout: {fanout['delivered_per_second']:.0f} deliveries/s, {fanout['missing']} missing, "
      f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms")
idle = json.load(open(f"{out}/idle.json"))["result"]
print(f"idle: {idle['bytes_per_member'] / 1024:.1f} KiB per member ({idle['joined']} joined)")
PY
