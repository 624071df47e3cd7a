# Everyday tasks. `just --list` shows them.

# Build and run the server with the embedded default project.
run *ARGS:
    cargo run --release -- serve {{ARGS}}

# Every test: unit, integration and the conformance suite.
test:
    bash tests/all.sh

# Only the conformance suite, against a server you already run.
conformance url="http://127.0.0.1:4111":
    FIXTURE=tests/conformance/fixture.json bash ../shared/conformance/run.sh {{url}}

# Check a project file.
validate file="edgestra.yaml":
    cargo run --release -- validate {{file}}

fmt:
    cargo fmt --all

lint:
    cargo fmt --all -- --check
    cargo clippy --release --all-targets -- -D warnings

# Tool use of local agents on BFCL data, this build next to the previous behaviour (bench/tools.sh).
bench-tools *ARGS:
    bash bench/tools.sh {{ARGS}}

# Crash check: SIGKILLs during mixed writes, then every acknowledged write read back (bench/durability.py).
bench-crash *ARGS:
    cargo build --release --bin edgestra
    python3 bench/durability.py crash {{ARGS}}

# Soak check: mixed reads and writes over 64 connections for 10 minutes; errors and RSS drift.
bench-soak *ARGS:
    cargo build --release --bin edgestra
    python3 bench/durability.py soak {{ARGS}}

# Static release files with the models embedded (default both musl triples): dist/edgestra-<version>-<triple>, dist/SHA256SUMS.
dist *TRIPLES:
    bash dist/build.sh {{TRIPLES}}

# Bounded test of each release file in dist/: validate, serve, one generate, SIGTERM (aarch64 under qemu-aarch64).
dist-check:
    #!/usr/bin/env bash
    set -euo pipefail
    shopt -s nullglob
    files=(dist/edgestra-*-unknown-linux-musl)
    [ ${#files[@]} -gt 0 ] || { echo "no release file in dist/: run just dist"; exit 1; }
    for f in "${files[@]}"; do bash dist/check.sh "$f"; done
