#!/usr/bin/env bash
# Tool use of local agents on BFCL v4 data (../shared/bench/bfcl): accuracy and median latency per
# category for this build and for the previous behaviour, measured in the same run, category by
# category in turn (so both see the same machine load). Each server is the default project's
# `assistant` agent with the embedded model, started fresh on a loopback port and a temp data dir.
#
#   bash bench/tools.sh                                   # baseline built from BASELINE_REV
#   BASELINE_BIN=/path/to/old/edgestra bash bench/tools.sh
#   CATS=simple_python,multiple N=50 bash bench/tools.sh
#
# BASELINE_REV defaults to 9f634d9, the main before local agents decided calls with the model's
# own lift (the figures issue #12 was filed against); it is built once into target/bench-baseline
# (a clean release build: ~25 minutes on 2 cores) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runner=../shared/bench/bfcl/run.sh
if [ ! -f "$runner" ]; then
  echo "bench tools: $runner not found (the BFCL runner)" >&2
  exit 1
fi
CATS=${CATS:-simple_python,multiple,irrelevance,live_simple,live_multiple}
N=${N:-100}
BASELINE_REV=${BASELINE_REV:-9f634d9}

cargo build --release --bin edgestra
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
# A copy, so that a rebuild while the bench runs does not change what it measures.
current=$work/edgestra
cp target/release/edgestra "$current"
if [ -z "${BASELINE_BIN:-}" ]; then
  tree=$root/target/bench-baseline/src-$BASELINE_REV
  [ -d "$tree" ] || git worktree add --detach "$tree" "$BASELINE_REV"
  (cd "$tree" && EDGESTRA_MODELS_DIR=$root/models CARGO_TARGET_DIR=$root/target/bench-baseline/target \
    cargo build --release --bin edgestra)
  BASELINE_BIN=$root/target/bench-baseline/target/release/edgestra
fi

# measure NAME BINARY CATEGORY: appends the runner's summary line to $work/NAME.
measure() {
  local port data
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  data=$(mktemp -d -p "$work")
  "$2" serve --port "$port" --data-dir "$data/db" >"$data/log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/api" >/dev/null && break
    sleep 0.2
  done
  BASE_URL=http://127.0.0.1:$port AGENT=assistant CATS=$3 N=$N OUT=$data/cases.json \
    bash "$runner" >"$data/out" 2>&1 || { cat "$data/out" "$data/log" >&2; exit 1; }
  grep "^bfcl $3:" "$data/out" >>"$work/$1"
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=""
}

IFS=, read -ra categories <<<"$CATS"
for cat in "${categories[@]}"; do
  measure baseline "$BASELINE_BIN" "$cat"
  measure current "$current" "$cat"
  echo "measured $cat" >&2
done

# Lines read "bfcl CATEGORY: PASSED/TOTAL (P%), median S s".
python3 - "$work/baseline" "$work/current" "$N" <<'PY'
import re, sys
def read(path):
    rows = {}
    for line in open(path):
        m = re.match(r"bfcl (\S+): (\d+)/(\d+) \((\d+)%\), median ([\d.]+) s", line)
        if m:
            rows[m[1]] = (int(m[2]), int(m[3]), float(m[5]))
    return rows
base, cur = read(sys.argv[1]), read(sys.argv[2])
print(f"BFCL v4, first {sys.argv[3]} cases per category, default `assistant` agent, embedded model")
print(f"{'category':<15} {'baseline':>16} {'this build':>16} {'change':>8}   median s (baseline → this)")
for cat, (p, n, s) in cur.items():
    bp, bn, bs = base.get(cat, (0, 0, float('nan')))
    pct = lambda a, b: 100.0 * a / b if b else float('nan')
    print(f"{cat:<15} {bp:>5}/{bn:<3} {pct(bp, bn):5.1f} % {p:>5}/{n:<3} {pct(p, n):5.1f} % "
          f"{pct(p, n) - pct(bp, bn):+7.1f}   {bs:.1f} → {s:.1f}")
PY
