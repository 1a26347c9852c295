#!/usr/bin/env bash
# The benchmark (docs/benchmarks.md): webhook ingest and backlog application on SQLite and
# Postgres, and page latency on a large demo dataset, against a release build on this machine.
#
#   scripts/bench.sh [--events 100000] [--customers 100000] [--sqlite-only] [--no-peer] [--pages-only] [--no-pages]
#   scripts/bench.sh --growth [--sizes "25000 50000 100000 200000"]
#
# --growth: only the growth run. For each size, a demo dataset of that many customers with the
# same business shape (2 subscriptions and 20 charges per customer over 24 months) is seeded
# (200,000 customers take about 13 GB and 35-60 minutes), then the pages are measured as below
# (first request after the first start, first request after a restart, p50/p95 of 40), and
# 20,000 signed events are ingested into it with the worker on (acknowledged per second, and until
# applied); peak memory for each. The smallest and the largest size are then served side by side
# and the pages' p95 compared with requests alternating between them (200 each): the target's
# figure. A dataset is removed once events were ingested into it (KEEP_GROWTH=1 keeps it, renamed).
#
# The peer (@supabase/stripe-sync-engine 0.48.5 behind node:http, scripts/bench-peer.mjs) gets the
# same events on Postgres; the summary prints Tally's ratio to it.
#
# Prints one JSON line per measurement and a summary; writes them to target/bench/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

EVENTS=100000
CUSTOMERS=100000
BACKENDS="sqlite postgres"
PEER=1
PAGES_ONLY=0
PAGES=1
GROWTH=0
SIZES="25000 50000 100000 200000"
LIVE_RATE=20
while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS="$2"; shift 2 ;;
    --customers) CUSTOMERS="$2"; shift 2 ;;
    --sqlite-only) BACKENDS="sqlite"; PEER=0; shift ;;
    --no-peer) PEER=0; shift ;;
    --pages-only) PAGES_ONLY=1; shift ;;
    --no-pages) PAGES=0; shift ;;
    --growth) GROWTH=1; shift ;;
    --sizes) SIZES="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/setup.sh
apt_install curl
scripts/build.sh >/dev/null
BIN="${CARGO_TARGET_DIR:-target}/release/tally"
OUT="${CARGO_TARGET_DIR:-target}/bench"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
: > "$RESULTS"
WORK=$(mktemp -d /var/tmp/tally-bench.XXXXXX)
SECRET=whsec_benchmark_secret
METRICS_TOKEN=bench-metrics-$$-$RANDOM
PORT=39$(( RANDOM % 90 + 10 ))
BASE="http://127.0.0.1:$PORT"
SERVER_PID=""
OTHER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$OTHER_PID" ] && kill "$OTHER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

record() { echo "$1" | tee -a "$RESULTS"; }

# start_server DATABASE_URL WORKER(on|off)
start_server() {
  env -i PATH="$PATH" HOME="$HOME" DATABASE_URL="$1" WEBHOOK_WORKER="$2" LISTEN_ADDR="127.0.0.1:$PORT" \
    SQLITE_SYNCHRONOUS="${SYNC:-full}" METRICS_TOKEN="$METRICS_TOKEN" \
    STRIPE_WEBHOOK_SECRET="$SECRET" RECONCILE_INTERVAL=off RUST_LOG=warn \
    TALLY_SITE_CONFIG="$PWD/Leptos.toml" LEPTOS_SITE_ROOT="${CARGO_TARGET_DIR:-target}/site" \
    "$BIN" serve >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    curl -fsS "$BASE/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the server did not start; see $WORK/server.log" >&2
  cat "$WORK/server.log" >&2
  exit 1
}

stop_server() {
  local peak
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  echo "$peak"
}

pending() { pending_at "$BASE"; }
pending_at() {
  curl -fsS -H "Authorization: Bearer $METRICS_TOKEN" "$1/metrics" | awk '/^tally_inbox_events\{status="pending"\}/ {p=$2} /^tally_inbox_events\{status="processing"\}/ {q=$2} END {print p+q}'
}
# Events an instance's worker finished (applied, superseded or ignored), from its /metrics.
processed_at() {
  curl -fsS -H "Authorization: Bearer $METRICS_TOKEN" "$1/metrics" | awk '/^tally_events_processed_total\{outcome="(applied|stale|ignored)"\}/ {n+=$2} END {print n+0}'
}

# seed_pages_db CUSTOMERS: the demo dataset of that size (seeded, or kept from a run of the last
# day); prints its path. The demo's history ends at the time it was made.
seed_pages_db() {
  local db="$OUT/pages-$1-2x20.db"
  if [ -z "$(find "$db" -mmin -1440 2>/dev/null)" ]; then
    rm -f "$db" "$db-wal" "$db-shm" "$db.tmp"*
    env -i PATH="$PATH" DATABASE_URL="sqlite://$db.tmp" TALLY_SITE_CONFIG="$PWD/Leptos.toml" "$BIN" seed-demo \
      --customers "$1" --subscriptions $(( $1 * 2 )) --charges $(( $1 * 20 )) >&2
    for part in "" -wal -shm; do
      if [ -f "$db.tmp$part" ]; then mv "$db.tmp$part" "$db$part"; fi
    done
  fi
  env -i PATH="$PATH" DATABASE_URL="sqlite://$db" TALLY_SITE_CONFIG="$PWD/Leptos.toml" "$BIN" migrate >/dev/null
  echo "$db"
}

if [ "$GROWTH" = 1 ]; then
  apt_install sqlite3
  SMALLEST=$(tr ' ' '\n' <<<"$SIZES" | grep . | sort -n | head -n 1)
  LARGEST=$(tr ' ' '\n' <<<"$SIZES" | grep . | sort -n | tail -n 1)
  # growth_ingest SIZE DB_FILE: 20,000 signed events into the grown database, the worker on
  # (acknowledged, then applied). The dataset is then no longer the seeded one: it is removed (the
  # largest do not fit beside each other on a small disk), or with KEEP_GROWTH=1 renamed so that
  # a later run never measures it as seeded.
  growth_ingest() {
    local size=$1 file=$2
    start_server "sqlite://$file" on
    started=$(date +%s.%N)
    line=$("$BIN" bench ingest --url "$BASE" --secret "$SECRET" --events 20000 --concurrency 64)
    while [ "$(pending)" != 0 ]; do sleep 0.1; done
    ended=$(date +%s.%N)
    peak=$(stop_server)
    secs=$(awk -v a="$started" -v b="$ended" 'BEGIN {printf "%.2f", b - a}')
    record "{\"backend\":\"sqlite\",\"test\":\"growth_ingest\",\"customers\":$size,\"result\":{\"ingest\":$line,\"seconds_until_applied\":$secs,\"events_per_second_applied\":$(awk -v s="$secs" 'BEGIN {printf "%d", 20000 / s}'),\"peak_rss_kib\":$peak}}"
    for part in "" -wal -shm; do
      if [ "${KEEP_GROWTH:-0}" = 1 ] && [ -f "$file$part" ]; then mv "$file$part" "${file%.db}-ingested.db$part"; else rm -f "$file$part"; fi
    done
  }
  for size in $SIZES; do
    stage "growth: $size customers"
    db_file=$(seed_pages_db "$size")
    DB="sqlite://$db_file"
    count() { sqlite3 "$db_file" "SELECT COUNT(*) FROM $1"; }
    record "{\"backend\":\"sqlite\",\"test\":\"growth_dataset\",\"customers\":$size,\"result\":{\"customers\":$(count customers),\"subscriptions\":$(count subscriptions),\"charges\":$(count charges),\"events\":$(count stripe_events),\"bytes\":$(stat -c %s "$db_file")}}"
    PASSWORD="bench password $$"
    echo "$PASSWORD" | env -i PATH="$PATH" DATABASE_URL="$DB" TALLY_SITE_CONFIG="$PWD/Leptos.toml" "$BIN" create-admin --email "bench$$@example.com" >/dev/null
    # The first start computes what later starts find kept; the restart's first requests are the
    # cold start a deploy meets.
    for start in first restart; do
      start_server "$DB" on
      for page_line in $(BENCH_PASSWORD="$PASSWORD" "$BIN" bench pages --url "$BASE" --email "bench$$@example.com" --requests 40 | tr -d ' '); do
        record "{\"backend\":\"sqlite\",\"test\":\"growth_page\",\"customers\":$size,\"start\":\"$start\",\"result\":$page_line}"
      done
      peak=$(stop_server)
      record "{\"backend\":\"sqlite\",\"test\":\"growth_pages_peak_rss_kib\",\"customers\":$size,\"start\":\"$start\",\"result\":$peak}"
    done
    # The smallest and largest stay as they were seeded until the comparison below.
    if [ "$size" != "$SMALLEST" ] && [ "$size" != "$LARGEST" ]; then growth_ingest "$size" "$db_file"; fi
    stage_done
  done
  # Page p95 at the largest size against the smallest, the target's figure: both servers up, the
  # same requests alternating between them (200 per page each), so the machine's noise falls on
  # both alike instead of on whichever size ran in a noisier minute.
  if [ "$SMALLEST" != "$LARGEST" ]; then
    stage "growth: $LARGEST against $SMALLEST customers, requests alternating"
    small_db=$(seed_pages_db "$SMALLEST")
    large_db=$(seed_pages_db "$LARGEST")
    start_server "sqlite://$small_db" on
    SMALL_PID=$SERVER_PID SMALL_BASE=$BASE
    PORT=$(( PORT + 1 ))
    BASE="http://127.0.0.1:$PORT"
    start_server "sqlite://$large_db" on
    OTHER_PID=$SMALL_PID
    for page_line in $(BENCH_PASSWORD="$PASSWORD" "$BIN" bench pages --url "$SMALL_BASE,$BASE" --email "bench$$@example.com" --requests 200 | tr -d ' '); do
      record "{\"backend\":\"sqlite\",\"test\":\"growth_compare\",\"small\":$SMALLEST,\"large\":$LARGEST,\"small_url\":\"$SMALL_BASE\",\"result\":$page_line}"
    done
    stop_server >/dev/null
    kill -TERM "$OTHER_PID"; wait "$OTHER_PID" 2>/dev/null || true; OTHER_PID=""
    stage_done
  fi
  stage "growth: ingest at $SMALLEST and $LARGEST customers"
  growth_ingest "$SMALLEST" "$(seed_pages_db "$SMALLEST")"
  [ "$SMALLEST" = "$LARGEST" ] || growth_ingest "$LARGEST" "$(seed_pages_db "$LARGEST")"
  stage_done
  echo
  node scripts/bench-summary.mjs "$RESULTS"
  echo "Commit:  $(git rev-parse --short HEAD)"
  echo "Results: $RESULTS"
  echo "$STAGE_REPORT"
  exit 0
fi

if [ "$PAGES_ONLY" = 1 ]; then BACKENDS=""; PEER=0; fi
for backend in $BACKENDS; do
  stage "ingest ($backend)"
  if [ "$backend" = sqlite ]; then
    DB="sqlite://$WORK/ingest.db"
  else
    ADMIN=$(scripts/postgres.sh)
    NAME="tally_bench_$$"
    PSQL=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
    "$PSQL" "$ADMIN" -qc "DROP DATABASE IF EXISTS $NAME" -c "CREATE DATABASE $NAME"
    DB="${ADMIN%/*}/$NAME"
  fi
  # Acknowledgements alone (the worker is off, so the inbox fills: the backlog for later).
  start_server "$DB" off
  "$BIN" bench ingest --url "$BASE" --secret "$SECRET" --events 2000 --concurrency 16 >/dev/null # warm-up
  line=$("$BIN" bench ingest --url "$BASE" --secret "$SECRET" --events "$EVENTS" --concurrency 64)
  record "{\"backend\":\"$backend\",\"test\":\"max_ingest\",\"result\":$line}"
  line=$("$BIN" bench ingest --url "$BASE" --secret "$SECRET" --events 25000 --concurrency 64 --rate 5000)
  record "{\"backend\":\"$backend\",\"test\":\"ingest_at_5000\",\"result\":$line}"
  peak=$(stop_server)
  record "{\"backend\":\"$backend\",\"test\":\"ingest_peak_rss_kib\",\"result\":$peak}"
  if [ "$backend" = sqlite ]; then
    # The same run with SQLITE_SYNCHRONOUS=normal (may lose the last commits on power loss), beside
    # the durable default: the price of durability, measured in one run.
    SYNC=normal start_server "sqlite://$WORK/ingest-normal.db" off
    "$BIN" bench ingest --url "$BASE" --secret "$SECRET" --events 2000 --concurrency 16 >/dev/null # warm-up
    line=$("$BIN" bench ingest --url "$BASE" --secret "$SECRET" --events "$EVENTS" --concurrency 64)
    record "{\"backend\":\"sqlite_sync_normal\",\"test\":\"max_ingest\",\"result\":$line}"
    stop_server >/dev/null
  fi
  stage_done

  stage "apply backlog ($backend)"
  start_server "$DB" on
  backlog=$(pending)
  started=$(date +%s.%N)
  while [ "$(pending)" != 0 ]; do sleep 0.2; done
  ended=$(date +%s.%N)
  peak=$(stop_server)
  secs=$(awk -v a="$started" -v b="$ended" 'BEGIN {printf "%.2f", b - a}')
  rate=$(awk -v n="$backlog" -v s="$secs" 'BEGIN {printf "%d", n / s}')
  record "{\"backend\":\"$backend\",\"test\":\"apply_backlog\",\"result\":{\"events\":$backlog,\"seconds\":$secs,\"events_per_second\":$rate,\"peak_rss_kib\":$peak}}"
  stage_done
  [ "$backend" = postgres ] && "$PSQL" "$ADMIN" -qc "DROP DATABASE IF EXISTS $NAME"

  stage "sustained ($backend)"
  # What users feel: events acknowledged and applied per second with the worker running beside
  # the ingest, on a new database; timed from the first delivery until the inbox is empty.
  if [ "$backend" = sqlite ]; then
    DB="sqlite://$WORK/sustained.db"
  else
    "$PSQL" "$ADMIN" -qc "DROP DATABASE IF EXISTS ${NAME}_s" -c "CREATE DATABASE ${NAME}_s"
    DB="${ADMIN%/*}/${NAME}_s"
  fi
  start_server "$DB" on
  "$BIN" bench ingest --url "$BASE" --secret "$SECRET" --events 2000 --concurrency 16 >/dev/null # warm-up
  while [ "$(pending)" != 0 ]; do sleep 0.1; done
  started=$(date +%s.%N)
  line=$("$BIN" bench ingest --url "$BASE" --secret "$SECRET" --events "$EVENTS" --concurrency 64)
  while [ "$(pending)" != 0 ]; do sleep 0.05; done
  ended=$(date +%s.%N)
  peak=$(stop_server)
  secs=$(awk -v a="$started" -v b="$ended" 'BEGIN {printf "%.2f", b - a}')
  rate=$(awk -v n="$EVENTS" -v s="$secs" 'BEGIN {printf "%d", n / s}')
  record "{\"backend\":\"$backend\",\"test\":\"sustained\",\"result\":{\"events\":$EVENTS,\"ingest\":$line,\"seconds_until_applied\":$secs,\"events_per_second\":$rate,\"peak_rss_kib\":$peak}}"
  [ "$backend" = postgres ] && "$PSQL" "$ADMIN" -qc "DROP DATABASE IF EXISTS ${NAME}_s"
  stage_done
done

if [[ " $BACKENDS " == *" postgres "* ]]; then
  stage "two instances (postgres)"
  # Two `tally serve` processes started together on one new database (their migrations race),
  # every event posted to both at once; each must be stored once and applied exactly once.
  ADMIN=$(scripts/postgres.sh)
  PSQL=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
  TWO_DB="tally_bench_two_$$"
  "$PSQL" "$ADMIN" -qc "DROP DATABASE IF EXISTS $TWO_DB" -c "CREATE DATABASE $TWO_DB"
  DB="${ADMIN%/*}/$TWO_DB"
  PORT_B=$(( PORT + 2 ))
  BASE_B="http://127.0.0.1:$PORT_B"
  launch() {
    env -i PATH="$PATH" HOME="$HOME" DATABASE_URL="$DB" WEBHOOK_WORKER=on LISTEN_ADDR="127.0.0.1:$1" \
      STRIPE_WEBHOOK_SECRET="$SECRET" RECONCILE_INTERVAL=off RUST_LOG=warn METRICS_TOKEN="$METRICS_TOKEN" \
      TALLY_SITE_CONFIG="$PWD/Leptos.toml" LEPTOS_SITE_ROOT="${CARGO_TARGET_DIR:-target}/site" \
      "$BIN" serve >"$WORK/$2" 2>&1 &
  }
  launch "$PORT" two-a.log; SERVER_PID=$!
  launch "$PORT_B" two-b.log; OTHER_PID=$!
  for url in "$BASE" "$BASE_B"; do
    for _ in $(seq 1 300); do curl -fsS "$url/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  done
  TWO_EVENTS=20000
  started=$(date +%s.%N)
  line=$("$BIN" bench ingest --url "$BASE,$BASE_B" --secret "$SECRET" --events "$TWO_EVENTS" --concurrency 32)
  # Until both inboxes are empty (at most two minutes: anything left is stuck).
  for _ in $(seq 1 600); do
    [ "$(pending_at "$BASE")" = 0 ] && [ "$(pending_at "$BASE_B")" = 0 ] && break
    sleep 0.2
  done
  ended=$(date +%s.%N)
  processed=$(( $(processed_at "$BASE") + $(processed_at "$BASE_B") ))
  q() { "$PSQL" "$DB" -Atc "$1"; }
  stored=$(q "SELECT COUNT(*) FROM stripe_events")
  applied=$(q "SELECT COUNT(*) FROM stripe_events WHERE status = 'applied'")
  stuck=$(q "SELECT COUNT(*) FROM stripe_events WHERE status NOT IN ('applied', 'ignored')")
  customers=$(q "SELECT COUNT(*) FROM customers")
  migrations=$(q "SELECT COUNT(*) FROM _sqlx_migrations")
  expected_migrations=$(ls migrations/postgres/*.sql | wc -l)
  deadlocks=$(cat "$WORK/two-a.log" "$WORK/two-b.log" | grep -ci deadlock || true)
  kill -TERM "$OTHER_PID"; wait "$OTHER_PID" 2>/dev/null || true; OTHER_PID=""
  stop_server >/dev/null
  secs=$(awk -v a="$started" -v b="$ended" 'BEGIN {printf "%.2f", b - a}')
  record "{\"backend\":\"postgres\",\"test\":\"two_instances\",\"result\":{\"events\":$TWO_EVENTS,\"ingest\":$line,\"stored\":$stored,\"applied\":$applied,\"processed\":$processed,\"stuck\":$stuck,\"customers\":$customers,\"migrations\":$migrations,\"expected_migrations\":$expected_migrations,\"deadlocks\":$deadlocks,\"seconds_until_applied\":$secs}}"
  "$PSQL" "$ADMIN" -qc "DROP DATABASE IF EXISTS $TWO_DB"
  stage_done
fi

if [ "$PEER" = 1 ]; then
  stage "peer: stripe-sync-engine (postgres)"
  # The peer is installed from npm into the target dir (never committed) and fed the same events.
  PEER_DIR="${CARGO_TARGET_DIR:-target}/bench/peer"
  if [ ! -f "$PEER_DIR/node_modules/@supabase/stripe-sync-engine/package.json" ]; then
    mkdir -p "$PEER_DIR"
    [ -f "$PEER_DIR/package.json" ] || echo '{"private":true}' > "$PEER_DIR/package.json"
    npm install --prefix "$PEER_DIR" --no-audit --no-fund --loglevel=error @supabase/stripe-sync-engine@0.48.5 >/dev/null
  fi
  ADMIN=$(scripts/postgres.sh)
  PSQL=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
  PEER_DB="tally_bench_peer_$$"
  "$PSQL" "$ADMIN" -qc "DROP DATABASE IF EXISTS $PEER_DB" -c "CREATE DATABASE $PEER_DB"
  PEER_PORT=$(( PORT + 1 ))
  PEER_DIR="$PEER_DIR" DATABASE_URL="${ADMIN%/*}/$PEER_DB" STRIPE_WEBHOOK_SECRET="$SECRET" PORT="$PEER_PORT" \
    node scripts/bench-peer.mjs >"$WORK/peer.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$PEER_PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  PEER_URL="http://127.0.0.1:$PEER_PORT"
  "$BIN" bench ingest --url "$PEER_URL" --secret "$SECRET" --events 2000 --concurrency 16 >/dev/null # warm-up
  line=$("$BIN" bench ingest --url "$PEER_URL" --secret "$SECRET" --events "$EVENTS" --concurrency 64)
  record "{\"backend\":\"peer\",\"test\":\"max_ingest\",\"result\":$line}"
  line=$("$BIN" bench ingest --url "$PEER_URL" --secret "$SECRET" --events 25000 --concurrency 64 --rate 5000)
  record "{\"backend\":\"peer\",\"test\":\"ingest_at_5000\",\"result\":$line}"
  applied=$("$PSQL" "${ADMIN%/*}/$PEER_DB" -Atc "SELECT COUNT(*) FROM stripe.customers")
  peak=$(stop_server)
  record "{\"backend\":\"peer\",\"test\":\"ingest_peak_rss_kib\",\"result\":$peak}"
  record "{\"backend\":\"peer\",\"test\":\"rows_applied\",\"result\":$applied}"
  "$PSQL" "$ADMIN" -qc "DROP DATABASE IF EXISTS $PEER_DB"
  stage_done
fi

if [ "$PAGES" = 1 ]; then
stage "pages ($CUSTOMERS customers, sqlite)"
# Seeding 100k customers takes minutes: the seeded database is kept in the target dir and reused
# for a day (the demo's history ends at the time it was made); the server migrates it on start.
# The brief's shape: per customer, 2 subscriptions and 20 charges over 24 months (100,000
# customers: 200,000 subscriptions, 2,000,000 charges).
PAGES_DB=$(seed_pages_db "$CUSTOMERS")
DB="sqlite://$PAGES_DB"
apt_install sqlite3
count() { sqlite3 "$PAGES_DB" "SELECT COUNT(*) FROM $1"; }
record "{\"backend\":\"sqlite\",\"test\":\"dataset\",\"result\":{\"customers\":$(count customers),\"subscriptions\":$(count subscriptions),\"charges\":$(count charges),\"invoices\":$(count invoices),\"events\":$(count stripe_events),\"mrr_movements\":$(count mrr_movements),\"bytes\":$(stat -c %s "$PAGES_DB")}}"
PASSWORD="bench password $$"
echo "$PASSWORD" | env -i PATH="$PATH" DATABASE_URL="$DB" TALLY_SITE_CONFIG="$PWD/Leptos.toml" "$BIN" create-admin --email "bench$$@example.com" >/dev/null
start_server "$DB" on
for page_line in $(BENCH_PASSWORD="$PASSWORD" "$BIN" bench pages --url "$BASE" --email "bench$$@example.com" --requests 40 | tr -d ' '); do
  record "{\"backend\":\"sqlite\",\"test\":\"page\",\"customers\":$CUSTOMERS,\"result\":$page_line}"
done
# The same pages while signed webhooks keep changing the data behind them (new charges and
# subscriptions, LIVE_RATE a second, applied by the worker), requested 4 times a second (each
# page for 10 s): what a busy account's admins see.
for page_line in $(BENCH_PASSWORD="$PASSWORD" STRIPE_WEBHOOK_SECRET="$SECRET" "$BIN" bench pages --url "$BASE" --email "bench$$@example.com" --requests 40 --interval-ms 250 --webhooks-per-sec "$LIVE_RATE" | tr -d ' '); do
  record "{\"backend\":\"sqlite\",\"test\":\"page_live\",\"customers\":$CUSTOMERS,\"result\":$page_line}"
done
peak=$(stop_server)
record "{\"backend\":\"sqlite\",\"test\":\"pages_peak_rss_kib\",\"result\":$peak}"
stage_done

fi

echo
node scripts/bench-summary.mjs "$RESULTS"
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "Commit:  $(git rev-parse --short HEAD)"
echo "Results: $RESULTS"
echo "$STAGE_REPORT"
