#!/usr/bin/env bash
# Bounded test of one release file (see dist/build.sh):
#
#   dist/check.sh FILE [TRIPLE]             linkage, validate, serve + /api + one generate + /ready + SIGTERM
#   dist/check.sh --linkage FILE [TRIPLE]   linkage only (dist/build.sh runs this on every file)
#
# TRIPLE defaults to what `file` says FILE is. An aarch64 file runs under qemu-aarch64 (Debian's
# qemu-user) on an x86-64 host. Every step has a time limit and the whole check is bounded by
# CHECK_TIMEOUT seconds (default 300 natively, 1500 under qemu, where loading and generating are
# slow). Exits non-zero on the first failure, with the server's log printed. CHECK_KEEP=1 keeps the
# temporary folder.
set -euo pipefail

linkage_only=false
if [ "${1:-}" = "--linkage" ]; then
    linkage_only=true
    shift
fi
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 [--linkage] FILE [TRIPLE]" >&2
    exit 2
fi

say() { printf 'check: %s\n' "$*"; }
fail() {
    printf 'check: FAILED: %s\n' "$*" >&2
    exit 1
}

file_arg=$1
[ -f "$file_arg" ] || fail "$file_arg is not a file"
[ -x "$file_arg" ] || fail "$file_arg is not executable"
bin=$(cd "$(dirname "$file_arg")" && pwd)/$(basename "$file_arg")

for tool in file readelf ldd; do
    command -v "$tool" >/dev/null || fail "$tool is needed (Debian: file, binutils, libc-bin)"
done

desc=$(file -b "$bin")
case "$desc" in
    *x86-64*) file_arch=x86_64 ;;
    *aarch64*) file_arch=aarch64 ;;
    *) fail "$bin is neither an x86-64 nor an aarch64 ELF file: $desc" ;;
esac
triple=${2:-$file_arch-unknown-linux-musl}
case "$triple" in
    x86_64-*) want_arch=x86_64 ;;
    aarch64-*) want_arch=aarch64 ;;
    *) fail "unsupported target $triple" ;;
esac
[ "$file_arch" = "$want_arch" ] || fail "$bin is $file_arch, not $triple: $desc"

# --- Linkage: one static file, nothing for a loader to resolve. -------------------------------
say "$(basename "$bin") ($triple): $desc"
case "$desc" in
    *"statically linked"*) ;;
    *) fail "file does not say 'statically linked' (static-pie or dynamic?)" ;;
esac
ldd_out=$(ldd "$bin" 2>&1 || true)
case "$ldd_out" in
    *"not a dynamic executable"*) ;;
    *) fail "ldd finds something: $ldd_out" ;;
esac
# ldd cannot look into a foreign architecture's file at all, so read the ELF headers too.
if readelf -lW "$bin" | grep -q 'INTERP'; then
    fail "it asks for a program interpreter: $(readelf -lW "$bin" | grep -A1 INTERP | tr -s ' ')"
fi
if readelf -dW "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
    fail "it needs shared libraries: $(readelf -dW "$bin" | grep '(NEEDED)' | tr -s ' ')"
fi
say "linkage ok: statically linked, ldd: not a dynamic executable, no interpreter, no NEEDED"
$linkage_only && exit 0

# --- How to run it. ----------------------------------------------------------------------------
runner=()
if [ "$want_arch" != "$(uname -m)" ]; then
    [ "$want_arch" = aarch64 ] || fail "cannot run a $want_arch file on $(uname -m)"
    if ! command -v qemu-aarch64 >/dev/null && ! command -v qemu-aarch64-static >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            say "installing qemu-user (qemu-aarch64)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
        else
            fail "qemu-aarch64 is needed: apt-get install qemu-user"
        fi
    fi
    runner=("$(command -v qemu-aarch64 || command -v qemu-aarch64-static)")
fi
for tool in curl timeout; do
    command -v "$tool" >/dev/null || fail "$tool is needed"
done

if [ ${#runner[@]} -gt 0 ]; then
    total=${CHECK_TIMEOUT:-1500}
    validate_limit=180
else
    total=${CHECK_TIMEOUT:-300}
    validate_limit=60
fi
deadline=$((SECONDS + total))
say "running ${runner[*]:+under ${runner[*]} }with a limit of ${total}s for the whole check"

# Seconds this step may take: its own limit, cut to what is left of the whole check.
budget() {
    local left=$((deadline - SECONDS))
    [ "$left" -gt 0 ] || fail "the whole check passed its limit of ${total}s (CHECK_TIMEOUT)"
    if [ "$1" -lt "$left" ]; then echo "$1"; else echo "$left"; fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/edgestra-check.XXXXXX")
server_pid=
log=$tmp/server.log
ok=false
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if ! $ok && [ -s "$log" ]; then
        echo "----- server log (last 200 lines) -----" >&2
        tail -n 200 "$log" >&2
        echo "----- end of server log -----" >&2
    fi
    if [ "${CHECK_KEEP:-0}" = 1 ]; then
        echo "check: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM

# Nothing from the caller's environment steers the binary (a project, a port, an API key).
while read -r name; do unset "$name"; done < <(compgen -e | grep '^EDGESTRA_' || true)

# --- validate: a good file passes, a bad one exits 1. ------------------------------------------
mkdir -p "$tmp/validate" "$tmp/run"
cat >"$tmp/validate/good.yaml" <<'YAML'
models:
  chat: { local: smollm2-135m-instruct }
tools:
  calc: { builtin: calculator }
agents:
  helper:
    name: Helper
    instructions: Answer in one short sentence.
    model: chat
    tools: [calc]
YAML
cat >"$tmp/validate/bad.yaml" <<'YAML'
models:
  chat: { local: smollm2-135m-instruct }
tools:
  calc: { builtin: calculator }
agents:
  helper:
    model: chat
    tools: [calc, ghost]
    colour: blue
YAML

limit=$(budget "$validate_limit")
set +e
out=$(cd "$tmp/validate" && timeout -k 5 "$limit" "${runner[@]}" "$bin" validate good.yaml 2>&1)
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "validate good.yaml exited $rc (124: timed out): $out"
say "validate good.yaml: exit 0"

limit=$(budget "$validate_limit")
set +e
out=$(cd "$tmp/validate" && timeout -k 5 "$limit" "${runner[@]}" "$bin" validate bad.yaml 2>&1)
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "validate bad.yaml exited $rc, expected 1 (124: timed out): $out"
case "$out" in
    *ghost*) ;;
    *) fail "validate bad.yaml did not name the undefined tool 'ghost': $out" ;;
esac
say "validate bad.yaml: exit 1 ($(printf '%s' "$out" | head -n 1))"

# --- serve from an empty folder: the embedded default project and models. ----------------------
free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
        return
    fi
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    fail "no free port found"
}
port=$(free_port)
base=http://127.0.0.1:$port
(cd "$tmp/run" && exec "${runner[@]}" "$bin" serve --port "$port" --data-dir ./data) >"$log" 2>&1 &
server_pid=$!
say "serve --port $port --data-dir ./data (pid $server_pid, from an empty folder)"

started=$SECONDS
up_limit=$(budget "$total")
while :; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        set +e
        wait "$server_pid"
        rc=$?
        set -e
        server_pid=
        fail "the server exited with $rc before answering /api"
    fi
    if curl -fsS -o /dev/null --max-time 5 "$base/api" 2>/dev/null; then
        break
    fi
    [ $((SECONDS - started)) -lt "$up_limit" ] || fail "GET /api did not answer within ${up_limit}s"
    sleep 2
done
say "GET /api: 200 after $((SECONDS - started))s"

started=$SECONDS
limit=$(budget 900)
code=$(curl -sS -o "$tmp/generate.json" -w '%{http_code}' --max-time "$limit" \
    -H 'content-type: application/json' \
    -d '{"messages":"Say hello.","maxTokens":8,"temperature":0}' \
    "$base/api/agents/assistant/generate" 2>"$tmp/curl.err") || true
[ "$code" = 200 ] || fail "POST /api/agents/assistant/generate answered '$code' after $((SECONDS - started))s: $(cat "$tmp/curl.err" "$tmp/generate.json" 2>/dev/null | head -c 2000)"
if command -v python3 >/dev/null; then
    text=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1])).get("text"); print(t if isinstance(t,str) else "", end="")' "$tmp/generate.json") \
        || fail "generate did not answer JSON: $(head -c 2000 "$tmp/generate.json")"
    [ -n "${text//[[:space:]]/}" ] || fail "generate answered an empty text: $(head -c 2000 "$tmp/generate.json")"
else
    grep -Eq '"text"[[:space:]]*:[[:space:]]*"[^"]' "$tmp/generate.json" \
        || fail "generate answered no non-empty text: $(head -c 2000 "$tmp/generate.json")"
    text=$(grep -Eo '"text"[[:space:]]*:[[:space:]]*"[^"]*' "$tmp/generate.json" | head -n 1)
fi
say "generate: 200 after $((SECONDS - started))s, text: $(printf '%s' "$text" | tr '\n' ' ' | head -c 200)"

limit=$(budget 30)
code=$(curl -sS -o "$tmp/ready.json" -w '%{http_code}' --max-time "$limit" "$base/ready" 2>/dev/null) || true
[ "$code" = 200 ] || fail "GET /ready answered '$code': $(head -c 2000 "$tmp/ready.json" 2>/dev/null)"
say "GET /ready: 200"

# --- SIGTERM: a graceful stop within 30 s. ------------------------------------------------------
kill -TERM "$server_pid"
stopped=$SECONDS
stop_limit=$(budget 30)
while kill -0 "$server_pid" 2>/dev/null; do
    [ $((SECONDS - stopped)) -lt "$stop_limit" ] || fail "the server did not exit within ${stop_limit}s of SIGTERM"
    sleep 0.5
done
set +e
wait "$server_pid"
rc=$?
set -e
server_pid=
[ "$rc" -eq 0 ] || fail "the server exited with $rc after SIGTERM, expected 0"
say "SIGTERM: exited 0 after $((SECONDS - stopped))s"

ok=true
say "PASSED $(basename "$bin") ($triple) in ${SECONDS}s"
