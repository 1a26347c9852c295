#!/usr/bin/env bash
# Sets up and runs the dashboard at http://127.0.0.1:3000 on SQLite (data/tally.db).
# Settings come from the environment or .env (see README). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
scripts/setup.sh
scripts/build.sh
exec "${CARGO_TARGET_DIR:-target}/release/tally" serve --demo
