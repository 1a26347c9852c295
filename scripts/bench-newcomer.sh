#!/usr/bin/env bash
# Times what a newcomer meets: from a fresh clone, the README's run command (scripts/run.sh) until
# the dashboard answers with the demo data, then the same command a second time.
#
# "Fresh" here: a new HOME, so no Cargo home (no cargo-leptos, no wasm-bindgen-cli, no downloaded
# crates), no npm cache and no target dir. Kept: the Rust toolchain itself (rustup's, which the
# README asks for first) and Debian packages already installed (Node.js, Chromium).
#
#   scripts/bench-newcomer.sh [REPOSITORY]     default: this checkout (its committed HEAD)
#
# Prints one line per run and keeps the logs in the work directory it names. Uses port 3000, as
# the run command does; nothing else may listen there.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="${1:-$here}"
rustup_home="$(rustup show home)"
cargo_bin="$(dirname "$(command -v cargo)")"
work="$(mktemp -d /tmp/tally-newcomer.XXXXXX)"
echo "work directory: $work"

if curl -sf -o /dev/null http://127.0.0.1:3000/readyz; then
  echo "something already answers on 127.0.0.1:3000; stop it first" >&2
  exit 1
fi

export HOME="$work/home"
export RUSTUP_HOME="$rustup_home"
unset CARGO_HOME CARGO_TARGET_DIR
mkdir -p "$HOME/.cargo/bin"
# rustup's proxies (one binary under several names) find the toolchain through RUSTUP_HOME.
for tool in cargo rustc rustup rustdoc cargo-clippy clippy-driver cargo-fmt rustfmt; do
  [ -e "$cargo_bin/$tool" ] && cp "$cargo_bin/$tool" "$HOME/.cargo/bin/"
done
export PATH="$HOME/.cargo/bin:$(echo "$PATH" | tr ':' '\n' | grep -v "^$cargo_bin\$" | paste -sd:)"

git clone -q "$repo" "$work/tally"
cd "$work/tally"

# Starts scripts/run.sh and waits until the overview of the demo owner shows MRR; prints seconds.
run_once() {
  local log="$1" start pid password
  start=$(date +%s.%N)
  scripts/run.sh >"$log" 2>&1 &
  pid=$!
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "scripts/run.sh stopped; see $log" >&2
      return 1
    fi
    if curl -sf -o /dev/null http://127.0.0.1:3000/readyz; then
      break
    fi
    sleep 1
  done
  # The demo owner's password is printed once, on the run that creates it.
  password=$(sed -n 's/^ *password: *//p' "$work/run1.log" | head -1)
  local jar="$work/cookies"
  rm -f "$jar"
  curl -sf -o /dev/null -c "$jar" -b "$jar" -H "Origin: http://127.0.0.1:3000" \
    --data-urlencode "email=demo@tally.local" --data-urlencode "password=$password" \
    --data-urlencode "next=/" http://127.0.0.1:3000/login
  if ! curl -sf -b "$jar" http://127.0.0.1:3000/ | grep -q "MRR"; then
    echo "the overview did not show the demo data; see $log" >&2
    kill "$pid"
    return 1
  fi
  local end
  end=$(date +%s.%N)
  # run.sh execs the server: stopping its process stops the dashboard.
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$start $end" | awk '{ printf "%.0f\n", $2 - $1 }'
}

first=$(run_once "$work/run1.log")
echo "first run (fresh clone, fresh HOME): ${first} s to a populated dashboard"
second=$(run_once "$work/run2.log")
echo "second run: ${second} s"
