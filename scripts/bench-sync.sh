#!/usr/bin/env bash
# The backfill benchmark (docs/benchmarks.md, "Backfill against Stripe's rate limit"): `tally sync`
# (release build) against a Stripe stand-in on loopback (scripts/bench-stripe.mjs) that answers
# every list call after 300 ms and allows 25 requests in any rolling second (test mode), then 100
# (live mode), with 20,000 customers and 200,000 charges.
#
#   scripts/bench-sync.sh [--customers 20000] [--charges 200000] [--delay 300] [--rounds 1]
#                         [--postgres] [--no-peer] [--no-baseline]
#
# For each mode: Tally at its default rate (20/s in test mode, 80/s in live mode), and the same
# run one page at a time (`--concurrency 1`, what `tally sync` did before slices) on a tenth of
# the data. The peer (@supabase/stripe-sync-engine 0.48.5, its syncBackfill, installed from npm
# into the target dir and pointed at the same stand-in) runs on the same tenth in test mode.
# Reported per run: wall time, requests the stand-in answered, requests refused (429), objects
# stored, the sustained rate (requests answered / wall time) and its share of the configured
# rate, and the peak memory of the process.
#
# Prints one JSON line per run and a table; writes them to target/bench/sync.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

CUSTOMERS=20000
CHARGES=200000
DELAY=300
ROUNDS=1
BACKEND=sqlite
PEER=1
BASELINE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --customers) CUSTOMERS="$2"; shift 2 ;;
    --charges) CHARGES="$2"; shift 2 ;;
    --delay) DELAY="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --postgres) BACKEND=postgres; shift ;;
    --no-peer) PEER=0; shift ;;
    --no-baseline) BASELINE=0; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/setup.sh >/dev/null
apt_install curl time
scripts/build.sh >/dev/null
BIN="${CARGO_TARGET_DIR:-target}/release/tally"
OUT="${CARGO_TARGET_DIR:-target}/bench"
mkdir -p "$OUT"
RESULTS="$OUT/sync.jsonl"
: > "$RESULTS"
WORK=$(mktemp -d /var/tmp/tally-bench-sync.XXXXXX)
STANDIN_PID=""
cleanup() {
  [ -n "$STANDIN_PID" ] && kill "$STANDIN_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=38$(( RANDOM % 90 + 10 ))

# start_standin LIMIT CUSTOMERS CHARGES
start_standin() {
  [ -n "$STANDIN_PID" ] && kill "$STANDIN_PID" 2>/dev/null && wait "$STANDIN_PID" 2>/dev/null || true
  node scripts/bench-stripe.mjs --port "$PORT" --delay "$DELAY" --limit "$1" --customers "$2" --charges "$3" \
    >"$WORK/standin.log" 2>&1 &
  STANDIN_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/__stats" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the stand-in did not start: $(cat "$WORK/standin.log")" >&2
  exit 1
}

database_url() { # name
  if [ "$BACKEND" = postgres ]; then
    local admin psql
    admin=$(scripts/postgres.sh)
    psql=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
    "$psql" "$admin" -qc "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
    echo "${admin%/*}/$1"
  else
    echo "sqlite://$WORK/$1.db"
  fi
}

# report NAME RATE SECONDS PEAK_KIB STORED
report() {
  local stats
  stats=$(curl -fsS "http://127.0.0.1:$PORT/__stats")
  node -e '
    const [name, rate, secs, peak, stored, expected] = process.argv.slice(1);
    const s = JSON.parse(process.argv[7]);
    const answered = s.requests - s.refused;
    const sustained = answered / Number(secs);
    console.log(JSON.stringify({ run: name, configured_rate: Number(rate), seconds: Number(secs), requests: s.requests,
      refused_429: s.refused, most_in_flight: s.most_in_flight, stored: Number(stored), expected: Number(expected),
      sustained_per_sec: Math.round(sustained * 10) / 10, share_of_rate: Math.round((sustained / Number(rate)) * 1000) / 10,
      peak_rss_kib: Number(peak) }));
  ' "$1" "$2" "$3" "$4" "$5" "$6" "$stats" | tee -a "$RESULTS"
}

# tally_run NAME LIMIT RATE CUSTOMERS CHARGES [extra sync args]
tally_run() {
  local name=$1 limit=$2 rate=$3 customers=$4 charges=$5
  shift 5
  start_standin "$limit" "$customers" "$charges"
  local db
  db=$(database_url "tally_bench_sync_$$")
  local start end
  start=$(date +%s.%N)
  env -i PATH="$PATH" HOME="$HOME" DATABASE_URL="$db" STRIPE_API_BASE="http://127.0.0.1:$PORT" \
    STRIPE_SECRET_KEY=sk_test_51benchmarkbackfill STRIPE_MAX_REQUESTS_PER_SECOND="$rate" RUST_LOG=warn \
    /usr/bin/time -f '%M' -o "$WORK/rss" "$BIN" sync "$@" >"$WORK/sync.out" 2>"$WORK/sync.err" || {
      echo "tally sync failed:" >&2; tail -5 "$WORK/sync.err" >&2; exit 1; }
  end=$(date +%s.%N)
  local stored
  stored=$(grep -o '[0-9]* objects fetched' "$WORK/sync.out" | grep -o '^[0-9]*')
  report "$name" "$rate" "$(echo "$end - $start" | bc -l)" "$(cat "$WORK/rss")" "$stored" "$((customers + charges))"
  [ "$BACKEND" = sqlite ] && rm -f "$WORK"/tally_bench_sync_*.db* || true
}

peer_run() { # NAME LIMIT CUSTOMERS CHARGES
  local name=$1 limit=$2 customers=$3 charges=$4
  local dir="${CARGO_TARGET_DIR:-target}/bench/peer"
  if [ ! -f "$dir/node_modules/@supabase/stripe-sync-engine/package.json" ]; then
    mkdir -p "$dir"
    [ -f "$dir/package.json" ] || echo '{"private":true}' > "$dir/package.json"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error @supabase/stripe-sync-engine@0.48.5 >/dev/null
  fi
  start_standin "$limit" "$customers" "$charges"
  local admin psql db
  admin=$(scripts/postgres.sh)
  psql=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
  db="tally_bench_sync_peer_$$"
  "$psql" "$admin" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  local start end
  start=$(date +%s.%N)
  PEER_DIR="$dir" DATABASE_URL="${admin%/*}/$db" STRIPE_PORT="$PORT" \
    /usr/bin/time -f '%M' -o "$WORK/rss" node scripts/bench-peer-backfill.mjs >"$WORK/peer.out" 2>"$WORK/peer.err" || {
      echo "the peer's backfill failed:" >&2; tail -5 "$WORK/peer.err" >&2; exit 1; }
  end=$(date +%s.%N)
  local stored
  stored=$("$psql" "${admin%/*}/$db" -Atc "SELECT (SELECT COUNT(*) FROM stripe.customers) + (SELECT COUNT(*) FROM stripe.charges)")
  # The peer has no rate setting: its share is taken of the stand-in's limit.
  report "$name" "$limit" "$(echo "$end - $start" | bc -l)" "$(cat "$WORK/rss")" "$stored" "$((customers + charges))"
  "$psql" "$admin" -qc "DROP DATABASE IF EXISTS $db" >/dev/null
}

apt_install bc
small_customers=$((CUSTOMERS / 10))
small_charges=$((CHARGES / 10))
for round in $(seq 1 "$ROUNDS"); do
  stage "round $round: test mode (stand-in 25/s), Tally at 20/s"
  tally_run "tally_test_mode_20_per_sec" 25 20 "$CUSTOMERS" "$CHARGES" --only customers,charges
  stage "round $round: live mode (stand-in 100/s), Tally at 80/s"
  tally_run "tally_live_mode_80_per_sec" 100 80 "$CUSTOMERS" "$CHARGES" --only customers,charges
  if [ "$BASELINE" = 1 ]; then
    stage "round $round: one page at a time (a tenth of the data)"
    tally_run "tally_one_page_at_a_time_tenth" 25 20 "$small_customers" "$small_charges" --only customers,charges --concurrency 1
    tally_run "tally_test_mode_20_per_sec_tenth" 25 20 "$small_customers" "$small_charges" --only customers,charges
  fi
  if [ "$PEER" = 1 ]; then
    stage "round $round: the peer's syncBackfill (a tenth of the data, Postgres)"
    peer_run "peer_stripe_sync_engine_tenth" 25 "$small_customers" "$small_charges"
  fi
done

echo
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const pad = (s, n) => String(s).padEnd(n);
  console.log(pad("run", 36) + pad("objects", 16) + pad("seconds", 10) + pad("req/s", 8) + pad("of rate", 9) + pad("429s", 6) + "peak MiB");
  for (const l of lines) console.log(pad(l.run, 36) + pad(`${l.stored}/${l.expected}`, 16) + pad(l.seconds.toFixed(1), 10) +
    pad(l.sustained_per_sec, 8) + pad(l.share_of_rate + "%", 9) + pad(l.refused_429, 6) + Math.round(l.peak_rss_kib / 1024));
' "$RESULTS"
