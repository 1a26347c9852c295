#!/usr/bin/env bash
# Installs what building Tally needs, idempotently: quick when everything is already there.
#   scripts/setup.sh            build tools (wasm target, wasm-bindgen-cli, wasm-opt, Node.js) for
#                               scripts/build.sh, which puts the pinned wasm-opt
#                               (scripts/tools/node_modules/.bin) first on PATH.
#                               cargo-leptos is not needed (`cargo leptos watch` for development
#                               is optional: README, "Build settings and runtime settings").
#   scripts/setup.sh --test     also what the tests need (Chromium, Node packages, PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

with_test=0
[ "${1:-}" = "--test" ] && with_test=1

export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is not on PATH; install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "==> adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ -z "$wb_version" ]; then
  echo "setup: cannot find the wasm-bindgen version in Cargo.lock" >&2
  exit 1
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wb_version\$"; then
  echo "==> installing wasm-bindgen-cli $wb_version"
  # Debug build too: it installs in about half the time, and the bundle it processes is small
  # (Leptos islands: about 130 KB of wasm).
  cargo install wasm-bindgen-cli --version "=$wb_version" --debug
fi

# wasm-opt for release builds (cargo-leptos would otherwise try to download it): binaryen 132 from
# npm, pinned in scripts/tools. Debian's binaryen (108) corrupts the externref table wasm-bindgen
# emits, and the release bundle then never hydrates.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
if [ ! -x scripts/tools/node_modules/.bin/wasm-opt ] || [ scripts/tools/package-lock.json -nt scripts/tools/node_modules/.package-lock.json ]; then
  echo "==> installing wasm-opt (binaryen, npm)"
  (cd scripts/tools && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "$with_test" = 1 ]; then
  command -v chromium >/dev/null || apt_install chromium
  if [ ! -d end2end/node_modules/playwright-core ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    echo "==> installing end2end Node packages"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
echo "==> setup complete"
