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
#   env: RATE (50), LOAD_S (60), POLL_WAIT_S (30), AION_BENCH_POSTGRES (postgres://postgres@127.0.0.1:5432),
#        AION_LOG (the replicas' log filter, default warn), LOG_DIR (keep the logs there),
#        SETTLE_S (10: pause between all nodes online and the timed leases)
#        REPLICAS (1): run that many `aion serve` replicas on the one database and split the
#        nodes over as many fleet-sim processes, one per replica (each process holds one
#        connection per node, and a process may open at most `ulimit -Hn` files: 20,000
#        here, so 36,000 nodes need 2). The lease client talks to the first replica; the
#        scheduler leads on one of them and the others learn of changes through NOTIFY.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PG=${AION_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
export PGSSLMODE=disable
RATE=${RATE:-50}
LOAD_S=${LOAD_S:-60}
POLL_WAIT_S=${POLL_WAIT_S:-30}
REPLICAS=${REPLICAS:-1}
SETTLE_S=${SETTLE_S:-10}
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(1000)
PORT=${PORT:-18391}
TICKS=$(getconf CLK_TCK)

cpu_s() { awk -v t="$TICKS" '{printf "%.1f\n", ($14 + $15) / t}' "/proc/$1/stat"; }
hwm_mib() { awk '/VmHWM/ {printf "%.0f\n", $2 / 1024}' "/proc/$1/status"; }
sum() { local t=0 x; for x in "$@"; do t=$(echo "$t + $x" | bc); done; echo "$t"; }

cargo build --release -q --bin aion --example fleet_load
for NODES in "${SIZES[@]}"; do
  DB="aion_fleet_${NODES}_$$"
  DATA=$(mktemp -d)
  SERVERS=() FLEETS=()
  trap 'kill ${FLEETS[*]} ${SERVERS[*]} 2>/dev/null || true; [[ -n ${LOG_DIR:-} ]] && mkdir -p "$LOG_DIR" && cp "$DATA"/*.log "$LOG_DIR/" 2>/dev/null || true; psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null; rm -rf "$DATA"' EXIT
  psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
  for ((r = 0; r < REPLICAS; r++)); do
    P=$((PORT + r))
    if ss -ltn | grep -q ":$P "; then echo "port $P is taken; set PORT" >&2; exit 1; fi
    # The first replica migrates and writes the admin token; the others share its data
    # folder (a replica finding a non-empty database writes no token).
    if ((r == 0)); then MIGRATE=(--migrate); else MIGRATE=(); fi
    AION_LOG=${AION_LOG:-warn} ./target/release/aion serve --database-url "$PG/$DB?sslmode=disable" "${MIGRATE[@]}" \
      --data-dir "$DATA/r0" --listen "127.0.0.1:$P" --db-max-connections 32 >"$DATA/serve$r.log" 2>&1 &
    SERVERS+=($!)
    for _ in $(seq 600); do
      [[ -f "$DATA/r0/admin-token" ]] && curl -sf "http://127.0.0.1:$P/healthz" >/dev/null && break; sleep 0.1
    done
    curl -sf "http://127.0.0.1:$P/healthz" >/dev/null || { echo "replica $r did not start:" >&2; cat "$DATA/serve$r.log" >&2; exit 1; }
  done
  START=$(date +%s)
  for ((r = 0; r < REPLICAS; r++)); do
    SHARE=$(((NODES + r) / REPLICAS))
    ./target/release/aion fleet-sim --server "http://127.0.0.1:$((PORT + r))" --admin-token-file "$DATA/r0/admin-token" \
      --nodes "$SHARE" --gpus-per-node 8 --state-dir "$DATA/fleet$r" --site "bench-$r" --poll-wait-s "$POLL_WAIT_S" \
      --report-every-s 5 --stats-file "$DATA/fleet$r.json" >"$DATA/fleet$r.log" 2>&1 &
    FLEETS+=($!)
  done
  # Wait until every node is online (and the fleets' figures restarted from there).
  for ((r = 0; r < REPLICAS; r++)); do
    until [[ -f "$DATA/fleet$r.json" ]] && jq -e '.all_online_after_s != null' "$DATA/fleet$r.json" >/dev/null; do
      kill -0 "${FLEETS[$r]}" 2>/dev/null || { cat "$DATA/fleet$r.log"; exit 1; }
      sleep 2
    done
  done
  ONLINE_S=$(($(date +%s) - START))
  # As in lease-bench.sh: let the scheduler's fleet view catch up with the last
  # registrations (a full restore of 288,000 GPUs takes 0.7-2 s here) before timing leases.
  sleep "$SETTLE_S"
  CPU0=$(sum $(for s in "${SERVERS[@]}"; do cpu_s "$s"; done))
  LOAD=$(./target/release/examples/fleet_load --base "http://127.0.0.1:$PORT" --token-file "$DATA/r0/admin-token" \
    --rate "$RATE" --duration-s "$LOAD_S")
  CPU1=$(sum $(for s in "${SERVERS[@]}"; do cpu_s "$s"; done))
  sleep 6 # one more fleet-sim report
  # Where a lease's time went, from its own timestamps: created → scheduled (admission and
  # the scheduler) and scheduled → active (the agent's wake-up, its reconcile and report).
  PHASES=$(psql -qAt "$PG/$DB" -c "WITH l AS (SELECT extract(epoch FROM scheduled_at - created_at) * 1000 AS s,
      extract(epoch FROM active_at - scheduled_at) * 1000 AS a FROM leases WHERE active_at IS NOT NULL)
    SELECT json_build_object(
      'to_scheduled_ms', json_build_object('p50', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY s)::numeric, 1),
        'p99', round(percentile_cont(0.99) WITHIN GROUP (ORDER BY s)::numeric, 1), 'max', round(max(s)::numeric, 1)),
      'scheduled_to_active_ms', json_build_object('p50', round(percentile_cont(0.5) WITHIN GROUP (ORDER BY a)::numeric, 1),
        'p99', round(percentile_cont(0.99) WITHIN GROUP (ORDER BY a)::numeric, 1), 'max', round(max(a)::numeric, 1)))
    FROM l")
  SRV_HWM=$(sum $(for s in "${SERVERS[@]}"; do hwm_mib "$s"; done))
  SIM_HWM=$(sum $(for f in "${FLEETS[@]}"; do hwm_mib "$f"; done))
  # One line: the first fleet-sim's figures (its own probes), the others' probes beside.
  jq -c -s --argjson load "$LOAD" --argjson phases "$PHASES" --arg online_s "$ONLINE_S" --arg cpu_load "$(echo "$CPU1 - $CPU0" | bc)" \
    --arg cpu_total "$CPU1" --arg srv_hwm "$SRV_HWM" --arg sim_hwm "$SIM_HWM" --argjson replicas "$REPLICAS" \
    '.[0] as $f | {replicas: $replicas, nodes: (map(.nodes) | add), gpus: (map(.gpus) | add), online: (map(.online) | add),
      register_s: (map(.register_s) | max), fleet_online_s: ($online_s|tonumber), rss_per_node_kib: $f.rss_per_node_kib,
      desired_state_ms: map(.desired_state_ms), status_ms: map(.status_ms), probe_errors: (map(.probe_errors) | add),
      leases: $load, lease_phases: $phases, server_cpu_s_during_load: ($cpu_load|tonumber), server_cpu_s_total: ($cpu_total|tonumber),
      server_peak_rss_mib: ($srv_hwm|tonumber), fleet_sim_peak_rss_mib: ($sim_hwm|tonumber)}' "$DATA"/fleet*.json
  kill "${FLEETS[@]}" "${SERVERS[@]}"; wait "${FLEETS[@]}" "${SERVERS[@]}" 2>/dev/null || true
  psql -q "$PG/postgres" -c "DROP DATABASE $DB WITH (FORCE)" >/dev/null
  if [[ -n ${LOG_DIR:-} ]]; then mkdir -p "$LOG_DIR" && cp "$DATA"/*.log "$LOG_DIR/"; fi
  rm -rf "$DATA"
done
