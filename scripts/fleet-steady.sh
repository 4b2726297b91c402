#!/bin/bash
# The agent protocol's steady state at fleet scale without a fleet-sized machine: N
# simulated nodes long-polling every W seconds put the same request rate on one
# `aion serve` as N*30/W nodes at the default 30 s (6,000 nodes at 5 s = 36,000 at 30 s).
# Prints the server's RSS and CPU and fleet-sim's progress every 10 s, then fleet-sim's
# figures and the scheduler's rebuild times. Needs a release build (cargo build --release).
set -u
N=${N:-6000}; W=${W:-5}; DUR=${DUR:-150}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PG=${AION_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}; DB=aion_steady_$$; D=$(mktemp -d)
export PGSSLMODE=disable
psql -q "$PG/postgres" -c "CREATE DATABASE $DB" || exit 1
env ${SERVE_ENV:-} AION_LOG=${AION_LOG:-warn,aion_services::scheduler=debug} ./target/release/aion serve --database-url "$PG/$DB?sslmode=disable" --migrate --data-dir $D/r0 --listen 127.0.0.1:18491 --db-max-connections 32 > $D/serve.log 2>&1 &
S=$!
trap 'kill $S 2>/dev/null; psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null; rm -rf $D' EXIT
for i in $(seq 100); do [ -f $D/r0/admin-token ] && curl -sf http://127.0.0.1:18491/healthz >/dev/null && break; sleep 0.2; done
./target/release/aion fleet-sim --server http://127.0.0.1:18491 --admin-token-file $D/r0/admin-token --nodes $N --gpus-per-node 8 --state-dir $D/fleet --site px --poll-wait-s $W --report-every-s 10 --duration-s $DUR --stats-file $D/fleet.json > $D/fleet.log 2>&1 &
F=$!
T=$(getconf CLK_TCK)
while kill -0 $F 2>/dev/null; do
  echo "$(date +%T) serve rss=$(awk '/VmRSS/{print int($2/1024)}' /proc/$S/status)MiB cpu=$(awk -v t=$T '{print ($14+$15)/t}' /proc/$S/stat)s sim cpu=$(awk -v t=$T '{print ($14+$15)/t}' /proc/$F/stat 2>/dev/null)s | $(tail -1 $D/fleet.log)"
  sleep 10
done
cat $D/fleet.json; echo; grep "took_ms" $D/serve.log | tail -3 | cut -c1-250
grep -iE "warn|error" $D/serve.log | grep -v took_ms | tail -5 | cut -c1-250
