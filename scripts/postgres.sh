#!/usr/bin/env bash
# Makes sure a PostgreSQL server is reachable for the tests and prints its admin URL.
# Uses TALLY_TEST_POSTGRES_URL when it already answers; otherwise installs Debian's postgresql
# if needed and starts a private throwaway cluster on 127.0.0.1:${TALLY_TEST_PGPORT:-55432}.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

port="${TALLY_TEST_PGPORT:-55432}"
data="${TALLY_TEST_PGDATA:-/var/tmp/tally-test-pg}"
url="postgres://postgres@127.0.0.1:${port}/postgres"

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

answers() { # url
  local bin; bin=$(pg_bin)
  [ -n "$bin" ] && "$bin/psql" "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
}

if [ -n "${TALLY_TEST_POSTGRES_URL:-}" ] && answers "$TALLY_TEST_POSTGRES_URL"; then
  echo "$TALLY_TEST_POSTGRES_URL"
  exit 0
fi

[ -n "$(pg_bin)" ] || apt_install postgresql >&2
bin=$(pg_bin)
if answers "$url"; then
  echo "$url"
  exit 0
fi

# initdb and pg_ctl refuse to run as root: run them as the postgres user then.
run_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ ! -s "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
  run_pg "$bin/initdb" -D "$data" -U postgres -A trust --no-sync >/dev/null
fi
# A stale pid file from a killed run would stop pg_ctl; it is safe to drop when nothing listens.
rm -f "$data/postmaster.pid"
run_pg "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c synchronous_commit=off -c max_connections=200" \
  start >&2
answers "$url" || { echo "postgres.sh: server did not answer at $url; see $data/server.log" >&2; exit 1; }
echo "$url"
