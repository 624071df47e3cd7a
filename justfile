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
