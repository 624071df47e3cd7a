#!/usr/bin/env bash
# Runs every test: unit tests and the integration binary (cargo), then the conformance suite
# (Mastra's own client, ../shared/conformance) against the release binary serving
# tests/conformance/edgestra.yaml, the official `openai` client against its /v1 API, the
# systemd unit's check, and the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Scenario groups of ../shared/conformance that edgestra implements; grows with each capability.
CONFORMANCE_GROUPS=${CONFORMANCE_GROUPS:-'^(system|agents|memory|workflows|a2a|tools|logs|telemetry|vector|mcp|scores|networks)'}

cargo test --release --all-targets
# The model paths once more on the AVX2 kernels, what a CPU without AVX-512 runs. The engine's
# kernels compute the same bits on every instruction set (unit-tested); this checks it end to end
# with the real model (EDGESTRA_SIMD: auto, scalar, avx2, vnni; one the CPU lacks falls back).
EDGESTRA_SIMD=avx2 cargo test --release --lib inference::

suite=../shared/conformance
if [ ! -f "$suite/run.sh" ]; then
  echo "conformance: $suite not found; skipped"
  exit 0
fi

cargo build --release --bin edgestra
data=$(mktemp -d)
log="$data/server.log"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
./target/release/edgestra serve --config tests/conformance/edgestra.yaml --port "$port" --data-dir "$data/db" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/api" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; echo "edgestra exited before answering"; exit 1; }
  sleep 0.1
done
FIXTURE="$PWD/tests/conformance/fixture.json" ONLY="$CONFORMANCE_GROUPS" bash "$suite/run.sh" "http://127.0.0.1:$port"

# The OpenAI-compatible API through the official `openai` npm client, against the same server.
oai=${XDG_CACHE_HOME:-$HOME/.cache}/edgestra-openai
if [ ! -f "$oai/node_modules/openai/package.json" ]; then
  mkdir -p "$oai"
  npm install --prefix "$oai" --no-audit --no-fund --loglevel=error openai@6.49.0 >/dev/null
fi
OPENAI_FROM="$oai" BASE_URL="http://127.0.0.1:$port" node tests/openai/client.mjs

# The systemd unit in deploy/, checked against the binary just built.
bash tests/deploy/verify.sh "$PWD/target/release/edgestra"

# The playground in a real browser (headless Chromium driven by playwright-core).
if command -v chromium >/dev/null 2>&1; then
  pw=${XDG_CACHE_HOME:-$HOME/.cache}/edgestra-playwright
  if [ ! -f "$pw/node_modules/playwright-core/package.json" ]; then
    mkdir -p "$pw"
    npm install --prefix "$pw" --no-audit --no-fund --loglevel=error playwright-core@1.65.1 >/dev/null
  fi
  keyed_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  ./target/release/edgestra serve --port "$keyed_port" --data-dir "$data/keyed" --api-key ui-test-key >"$data/keyed.log" 2>&1 &
  keyed=$!
  trap 'kill "$server" "$keyed" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"' EXIT
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$keyed_port/api" && break
    sleep 0.1
  done
  PLAYWRIGHT_FROM="$pw" BASE_URL="http://127.0.0.1:$port" KEYED_URL="http://127.0.0.1:$keyed_port" KEYED_KEY=ui-test-key \
    node tests/ui/playground.mjs
  # Mastra's own playground (the page `mastra dev` serves, from the npm package of the mastra CLI)
  # against the same server.
  mpg=${XDG_CACHE_HOME:-$HOME/.cache}/edgestra-mastra-playground
  if [ ! -f "$mpg/package/src/playground/dist/index.html" ]; then
    mkdir -p "$mpg"
    (cd "$mpg" && npm pack --silent mastra@0.10.20 >/dev/null && tar xzf mastra-0.10.20.tgz package/src/playground/dist)
  fi
  PLAYWRIGHT_FROM="$pw" MASTRA_PLAYGROUND="$mpg/package/src/playground/dist" BASE_URL="http://127.0.0.1:$port" \
    node tests/ui/mastra-playground.mjs
else
  echo "playground: chromium is not installed; the browser test was not run"
fi
