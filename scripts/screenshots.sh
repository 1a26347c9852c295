#!/usr/bin/env bash
# Screenshots of every page (1440 and 390 px wide, light and dark) of the release build on a
# fresh demo, into target/screenshots/ (not committed), so anyone can look at the whole UI.
#
#   scripts/screenshots.sh [--customers 300]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
CUSTOMERS=300
if [ "${1:-}" = "--customers" ]; then CUSTOMERS="$2"; fi

scripts/setup.sh
scripts/build.sh
target="${CARGO_TARGET_DIR:-target}"
work=$(mktemp -d)
out="$PWD/target/screenshots"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export DATABASE_URL="sqlite://$work/tally.db" LISTEN_ADDR="127.0.0.1:$port" RUST_LOG=warn \
  LEPTOS_SITE_ROOT="$PWD/target/site" TALLY_SITE_CONFIG="$PWD/Leptos.toml" \
  TALLY_SECRETS_KEY=$(printf "5a%.0s" $(seq 32))
# The owner the browser logs in as (end2end/tests/harness.mjs).
echo 'correct horse battery staple' | "$target/release/tally" create-admin --email owner@example.com --role owner >/dev/null
"$target/release/tally" seed-demo --customers "$CUSTOMERS" --connected 80
"$target/release/tally" serve & server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
rm -rf "$out"
(cd end2end && node screenshots.mjs "http://127.0.0.1:$port" "$out")
