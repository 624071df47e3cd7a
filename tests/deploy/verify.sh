#!/usr/bin/env bash
# Checks deploy/edgestra.service: `systemd-analyze verify` must print nothing about it, and it must
# keep its key hardening settings. Also prints the `systemd-analyze security` exposure score
# (information only).
#
#   bash tests/deploy/verify.sh [BINARY]    # BINARY: a built edgestra, default target/release/edgestra
#
# verify insists that ExecStart's binary exists, so the unit is checked as a copy whose ExecStart
# points at BINARY (any executable works, e.g. /bin/true). Without systemd-analyze, the script
# installs Debian's systemd package when run as root, and otherwise skips (exit 0).
set -euo pipefail
cd "$(dirname "$0")/../.."

unit_src=deploy/edgestra.service
unit_name=$(basename "$unit_src")
bin=${1:-target/release/edgestra}

fail() {
  echo "verify: FAIL: $*" >&2
  exit 1
}

[ -f "$unit_src" ] || fail "$unit_src not found"
[ -x "$bin" ] && [ -f "$bin" ] || fail "$bin is not an executable file (build it, or pass another binary as \$1)"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

# The hardening this unit must keep.
for want in '^DynamicUser=yes$' '^StateDirectory=' '^ProtectSystem=strict$'; do
  grep -Eq "$want" "$unit_src" || fail "$unit_src lacks a line matching $want"
done
grep -Eq '^ExecStart=/usr/local/bin/edgestra serve' "$unit_src" ||
  fail "$unit_src: ExecStart is not /usr/local/bin/edgestra serve"

if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "verify: systemd-analyze missing; installing the systemd package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends systemd >/dev/null
  else
    echo "verify: systemd-analyze not found (and not root with apt-get to install it); skipped"
    exit 0
  fi
fi
echo "verify: $(systemd-analyze --version | head -n 1)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unit="$tmp/$unit_name"
sed "s#^ExecStart=/usr/local/bin/edgestra #ExecStart=$bin #" "$unit_src" >"$unit"
grep -q "^ExecStart=$bin serve" "$unit" || fail "could not rewrite ExecStart"

# verify exits 0 on mere warnings (unknown keys, bad values), so its output decides. It may also
# talk about other units of this host (those the unit depends on): only lines naming ours count.
# --recursive-errors=no (systemd >= 250): the exit status then reflects this unit only.
verify_args=(--man=no)
if systemd-analyze --help 2>&1 | grep -q -- '--recursive-errors'; then
  verify_args+=(--recursive-errors=no)
fi
status=0
out=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify "${verify_args[@]}" "$unit" 2>&1) || status=$?
ours=$(printf '%s\n' "$out" | grep -F "$unit_name" || true)
if [ -n "$out" ]; then
  echo "verify: systemd-analyze verify printed:"
  printf '%s\n' "$out" | sed 's/^/  /'
fi
[ -z "$ours" ] || fail "systemd-analyze verify reported problems in $unit_name"
if [ "$status" -ne 0 ]; then
  fail "systemd-analyze verify exited with $status"
fi
echo "verify: systemd-analyze verify: $unit_name is clean"

# Informational: the exposure score (systemd >= 250 analyses unit files offline).
if systemd-analyze security --help 2>&1 | grep -q -- '--offline'; then
  score=$(SYSTEMD_LOG_COLOR=0 systemd-analyze security --offline=yes --no-pager "$unit" 2>&1 |
    grep -F 'Overall exposure level' || true)
  echo "verify: ${score:-systemd-analyze security printed no exposure score}"
else
  echo "verify: systemd-analyze security --offline not supported by this version; score skipped"
fi
echo "verify: OK"
