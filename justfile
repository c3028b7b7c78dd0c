# The testbed's commands. `just --list` shows them.

# One build folder outside the clone, kept between runs (CI and local), so nothing rebuilds
# from zero. Override with CARGO_TARGET_DIR.
export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", home_directory() / ".cache/oidc-testbed/target")

# Show the recipes.
default:
    @just --list

# Bring up the whole stack (Redis, mock IdP, extauth, upstream, gateway) and print the login.
run *ARGS:
    cargo run -p harness -- up {{ARGS}}

# The whole suite: units, properties, snapshots, integration and the e2e scenarios.
test: deps
    cargo test --workspace --no-fail-fast
    cargo test -p benches --benches

# Only the end-to-end scenarios (real Redis, real Chromium, gRPC gateway simulator).
test-e2e: deps
    cargo test -p harness --test e2e -- --nocapture

# Criterion benchmarks (release build).
bench:
    cargo bench -p benches

# Formatting and lints, as CI wants them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Install the system parts the tests drive (redis-server, chromium) when they are missing.
deps:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ ${#missing[@]} -eq 0 ] && exit 0
    echo "installing: ${missing[*]}"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
