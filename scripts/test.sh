#!/usr/bin/env bash
# Sets up and runs every test: formatting, clippy on both feature sets, Rust tests on SQLite and
# Postgres, the release build, and the browser suite against it. Prints how long each stage took.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# One target dir for tests, clippy and the release build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
trap stage_summary EXIT

stage "setup tools"
scripts/setup.sh --test
stage_done

stage "cargo fmt --check"
cargo fmt --all -- --check
stage_done

stage "clippy (ssr)"
cargo clippy --all-targets --features ssr -- -D warnings
stage_done

stage "clippy (hydrate)"
cargo clippy --lib --no-default-features --features hydrate --target wasm32-unknown-unknown -- -D warnings
stage_done

stage "postgres"
TALLY_TEST_POSTGRES_URL=$(scripts/postgres.sh)
export TALLY_TEST_POSTGRES_URL
# Databases left by earlier runs are dropped so the throwaway cluster does not grow.
psql_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/psql
"$psql_bin" "$TALLY_TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -Atqc \
  "SELECT 'DROP DATABASE ' || quote_ident(datname) || ';' FROM pg_database WHERE datname LIKE 'tally\_test\_%'" \
  | "$psql_bin" "$TALLY_TEST_POSTGRES_URL" -v ON_ERROR_STOP=1 -q >/dev/null
echo "PostgreSQL at $TALLY_TEST_POSTGRES_URL"
stage_done

stage "cargo test (sqlite + postgres)"
cargo test --features ssr
stage_done

# The browser suite runs against what the README's run command builds and serves: the release
# build (a bundle that optimises but does not hydrate must fail here, not in users' browsers).
stage "release build (scripts/build.sh)"
scripts/build.sh
stage_done

stage "browser tests (release build)"
# The server binary is wherever cargo put it; the site (wasm, css) is under the project's target/site.
export TALLY_BIN="$CARGO_TARGET_DIR/release/tally"
(cd end2end && node --test tests/*.test.mjs)
stage_done
