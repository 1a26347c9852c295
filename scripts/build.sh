#!/usr/bin/env bash
# Builds the release: the server binary (target/release/tally) and the browser bundle under
# target/site, as `cargo leptos build --release --precompress` does, with the same cargo
# invocations and tools but without cargo-leptos itself (installing it took 7.5 minutes of a
# newcomer's first run; docs/benchmarks.md "Newcomer time"). `cargo leptos watch` still works
# for development (Cargo.toml [package.metadata.leptos]).
#
#   scripts/build.sh     needs wasm-bindgen (the Cargo.lock version) and wasm-opt on PATH:
#                        scripts/setup.sh installs them; run.sh, test.sh and bench.sh call this.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

# LEPTOS_OUTPUT_NAME, which Leptos reads at build time, comes from .cargo/config.toml.

# The two builds run side by side: they use different target dirs, and each has long stretches
# on one core (the tally crate's front end, linking, C code), so together they finish sooner.
stage "release build (browser bundle and server, side by side)"
bundle=$(mktemp -d)
trap 'rm -rf "$bundle"' EXIT
(
  # Its own target dir, as cargo-leptos uses: the wasm target shares nothing with the server's.
  cargo build --package=tally --lib --target-dir=target/front --target=wasm32-unknown-unknown \
    --no-default-features --features=hydrate --profile=wasm-release
  wasm-bindgen --target=web --no-typescript --out-name=tally --out-dir="$bundle" \
    target/front/wasm32-unknown-unknown/wasm-release/tally.wasm
  # binaryen 132 (scripts/tools): Debian's 108 breaks the bundle (the page never hydrates).
  wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$bundle/tally_bg.wasm" -o "$bundle/tally_bg.wasm"
  cp style/main.css "$bundle/tally.css"
  node scripts/site.mjs "$bundle" target/site
) &
front=$!
server=0
cargo build --release --no-default-features --features=ssr --bin tally || server=$?
front_status=0
wait "$front" || front_status=$?
if [ "$front_status" != 0 ] || [ "$server" != 0 ]; then
  echo "build: the browser bundle (exit $front_status) or the server (exit $server) failed" >&2
  exit 1
fi
stage_done
