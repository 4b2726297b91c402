#!/usr/bin/env bash
# Lease benchmark (issue 4): concurrent clients create leases over HTTP against a real
# `aion serve` on a fresh PostgreSQL database with GPUS simulated GPUs registered through
# the agent API; then pgbench on the same server gives the database's own limit.
#
#   scripts/lease-bench.sh [GPUS...]      default: 1000 8000 64000
#   env: CLIENTS (32), LEASES (6000), SETTLE_S (10: pause between registering the fleet and
#        the timed run, so the scheduler's fleet view has caught up with the registrations),
#        AION_BENCH_POSTGRES (postgres://postgres@127.0.0.1:5432)
# Prints one JSON line per fleet size, then the pgbench TPS line. The simulated nodes do
# not heartbeat, so the server runs with a day-long node timeout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PG=${AION_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
# Loopback: no TLS for the server's pool nor for pgbench, so both pay the same.
export PGSSLMODE=disable
CLIENTS=${CLIENTS:-32}
LEASES=${LEASES:-6000}
SETTLE_S=${SETTLE_S:-10}
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(1000 8000 64000)
PORT=18181

cargo build --release -q --bin aion --example lease_bench
for GPUS in "${SIZES[@]}"; do
  DB="aion_bench_${GPUS}_$$"
  DATA=$(mktemp -d)
  psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
  AION_LOG=warn ./target/release/aion serve --database-url "$PG/$DB?sslmode=disable" --migrate --data-dir "$DATA" \
    --listen "127.0.0.1:$PORT" --db-max-connections 32 --node-timeout-s 86400 >"$DATA/serve.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  ./target/release/examples/lease_bench --base "http://127.0.0.1:$PORT" --token "$(cat "$DATA/admin-token")" \
    --gpus "$GPUS" --clients "$CLIENTS" --leases "$LEASES" --settle-s "$SETTLE_S" --json
  kill "$PID"; wait "$PID" 2>/dev/null || true
  psql -q "$PG/postgres" -c "DROP DATABASE $DB WITH (FORCE)" >/dev/null
  rm -rf "$DATA"
done

PGB="aion_pgbench_$$"
psql -q "$PG/postgres" -c "CREATE DATABASE $PGB" >/dev/null
pgbench -i -q -s 10 "$PG/$PGB" >/dev/null 2>&1
pgbench -c "$CLIENTS" -j 2 -T 15 "$PG/$PGB" 2>/dev/null | grep -E "^tps" | sed 's/^/pgbench (TPC-B like, same clients): /'
psql -q "$PG/postgres" -c "DROP DATABASE $PGB WITH (FORCE)" >/dev/null
