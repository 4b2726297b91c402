#!/usr/bin/env bash
# Fleet benchmark (issue 5): `aion serve` (release) on a fresh PostgreSQL database, then
# `aion fleet-sim` with NODES × 8 simulated H100 registered through join tokens and the
# real agent API. Once every node is online (desired state fetched, status reported), a
# client creates 1g leases at RATE/s for LOAD_S seconds and follows each until `active`
# (examples/fleet_load.rs). Prints one JSON line per fleet size: the agent protocol's
# round trips (sampled by fleet-sim from its nodes), request → active, server CPU seconds
# and peak RSS, fleet-sim peak RSS.
#
#   scripts/fleet-bench.sh [NODES...]     default: 1000
#   env: RATE (50), LOAD_S (60), POLL_WAIT_S (30), AION_BENCH_POSTGRES (postgres://postgres@127.0.0.1:5432)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PG=${AION_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
export PGSSLMODE=disable
RATE=${RATE:-50}
LOAD_S=${LOAD_S:-60}
POLL_WAIT_S=${POLL_WAIT_S:-30}
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(1000)
PORT=${PORT:-18391}
TICKS=$(getconf CLK_TCK)

cpu_s() { awk -v t="$TICKS" '{printf "%.1f", ($14 + $15) / t}' "/proc/$1/stat"; }
hwm_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

cargo build --release -q --bin aion --example fleet_load
for NODES in "${SIZES[@]}"; do
  DB="aion_fleet_${NODES}_$$"
  DATA=$(mktemp -d)
  if ss -ltn | grep -q ":$PORT "; then echo "port $PORT is taken; set PORT" >&2; exit 1; fi
  SERVER="" FLEET=""
  trap 'kill $FLEET $SERVER 2>/dev/null; psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null; rm -rf "$DATA"' EXIT
  psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
  AION_LOG=warn ./target/release/aion serve --database-url "$PG/$DB?sslmode=disable" --migrate --data-dir "$DATA" \
    --listen "127.0.0.1:$PORT" --db-max-connections 32 >"$DATA/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 600); do
    [[ -f "$DATA/admin-token" ]] && curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1
  done
  START=$(date +%s)
  ./target/release/aion fleet-sim --server "http://127.0.0.1:$PORT" --admin-token-file "$DATA/admin-token" \
    --nodes "$NODES" --gpus-per-node 8 --state-dir "$DATA/fleet" --site bench --poll-wait-s "$POLL_WAIT_S" \
    --report-every-s 5 --stats-file "$DATA/fleet.json" >"$DATA/fleet.log" 2>&1 &
  FLEET=$!
  # Wait until every node is online (and the fleet's figures restarted from there).
  until [[ -f "$DATA/fleet.json" ]] && jq -e '.all_online_after_s != null' "$DATA/fleet.json" >/dev/null; do
    kill -0 "$FLEET" 2>/dev/null || { cat "$DATA/fleet.log"; exit 1; }
    sleep 2
  done
  ONLINE_S=$(($(date +%s) - START))
  CPU0=$(cpu_s "$SERVER")
  LOAD=$(./target/release/examples/fleet_load --base "http://127.0.0.1:$PORT" --token-file "$DATA/admin-token" \
    --rate "$RATE" --duration-s "$LOAD_S")
  CPU1=$(cpu_s "$SERVER")
  sleep 6 # one more fleet-sim report
  jq -c --argjson load "$LOAD" --arg online_s "$ONLINE_S" --arg cpu_load "$(echo "$CPU1 - $CPU0" | bc)" \
    --arg cpu_total "$CPU1" --arg srv_hwm "$(hwm_mib "$SERVER")" --arg sim_hwm "$(hwm_mib "$FLEET")" \
    '{nodes, gpus, online, register_s, fleet_online_s: ($online_s|tonumber), rss_per_node_kib, desired_state_ms, status_ms, probe_errors,
      leases: $load, server_cpu_s_during_load: ($cpu_load|tonumber), server_cpu_s_total: ($cpu_total|tonumber),
      server_peak_rss_mib: ($srv_hwm|tonumber), fleet_sim_peak_rss_mib: ($sim_hwm|tonumber)}' "$DATA/fleet.json"
  kill "$FLEET" "$SERVER"; wait "$FLEET" "$SERVER" 2>/dev/null || true
  psql -q "$PG/postgres" -c "DROP DATABASE $DB WITH (FORCE)" >/dev/null
  rm -rf "$DATA"
done
