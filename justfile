# The testbed's commands. `just --list` shows them.

# One build folder outside the clone, kept between runs (CI and local), so nothing rebuilds
# from zero. Override with CARGO_TARGET_DIR.
export CARGO_TARGET_DIR := env_var_or_default("CARGO_TARGET_DIR", home_directory() / ".cache/oidc-testbed/target")

# Show the recipes.
default:
    @just --list

# Options, e.g. `just run --idp oidc-provider --gateway caddy --redis process --replicas 2`:
# `cargo run -p harness -- up --help`. The extauth binary is built too (`--replicas` runs it).
# Bring up the whole stack (Redis, IdP, extauth, upstream, gateway) and print the login.
run *ARGS:
    cargo build -q -p harness -p extauth
    cargo run -p harness -- up {{ARGS}}

# The e2e part runs the backend matrix: mock and oidc-provider IdPs; the simulator,
# agentgateway, Caddy and nginx; Redis as a process and as a container; Keycloak rows skip
# with their reason when its image is absent. Needs a Docker engine: started here when none
# answers (`just docker-down`).
# The whole suite: units, properties, snapshots, integration, the e2e backend matrix.
test: deps docker-up images
    cargo test --workspace --no-fail-fast
    cargo test -p benches --benches

# The deterministic simulation in one process, e.g. `just sim --seed 42` or `just sim --seeds 0..100`
# (`-- sim --help`); the same seed prints the same trace hash.
sim *ARGS:
    cargo run -q -p harness -- sim {{ARGS}}

# Only the end-to-end scenarios, on every declared backend, plus the no-leftovers check.
test-e2e: deps docker-up images
    cargo build -q -p harness -p extauth
    cargo test -p harness --test e2e --test cleanup --test url_target --test replicas -- --nocapture

# Run scenario files with the harness, e.g. `just scenarios --matrix --junit junit.xml`.
scenarios *ARGS:
    cargo build -q -p harness -p extauth
    cargo run -q -p harness -- run {{ARGS}}

# Load test: virtual users log in (HTTP driver) and call the gateway, with a same-run baseline,
# e.g. `just load --users 8 --logins 20 --report target/load.json`, or with faults:
# `just load --replicas 2 --redis process --duration 20 --fault extauth-kill:0@5` (`-- load --help`).
load *ARGS:
    cargo build -q -p harness -p extauth
    cargo run -q -p harness -- load {{ARGS}}

# Build the local images the harness asks for (`redis:7`, `mock-idp`): no pulls here.
images: docker-up
    bash harness/scripts/build-images.sh

# Start dockerd (host networking only) when no engine answers; PID in .run/dockerd.pid.
docker-up:
    bash harness/scripts/docker-up.sh

# Stop the dockerd that `docker-up` started, by its recorded PID.
docker-down:
    bash harness/scripts/docker-down.sh

# Criterion benchmarks (release build).
bench:
    cargo bench -p benches

# The benchmark report of benches/README.md, measured again (release build): extauth's check
# (one `extauth serve` process, redis-server) over HTTP and gRPC at 1 and 16 connections,
# without and with `clientSideCache`, beside Redis GET and the no-op servers in the same runs
# (1,000 sessions; at 16 connections without the cache also 1,000,000, for the p99 row); the
# gateway simulator and agentgateway (each with extauth and with the no-op ext_authz server,
# agentgateway also with the cache) and mock-idp against oidc-provider; then the table of
# every figure, its baseline, the ratio and the target. Reports and plots go to
# target/bench-report/. About 15 minutes with the default `SECS=6` (seconds per series);
# `SECS=30 just bench-report` for longer runs. agentgateway: PATH or ../shared/bin.
bench-report:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -q -p harness -p extauth
    bin="$CARGO_TARGET_DIR/release/harness"
    ext="$CARGO_TARGET_DIR/release/extauth"
    out=target/bench-report
    mkdir -p "$out"
    secs="${SECS:-6}"
    run() { # NAME ARGS...: one `harness load` run, its report as $out/NAME.json
        local name="$1"
        shift
        "$bin" load --redis process --replicas 1 --extauth-bin "$ext" --quiet \
            --duration "$secs" --report "$out/$name.json" "$@"
    }
    for target in http grpc; do
        run "$target-c1" --target "$target" --connections 1 --sessions 1000
        run "$target-c16" --target "$target" --connections 16 --sessions 1000,1000000
        run "$target-cached-c1" --target "$target" --connections 1 --sessions 1000 --client-side-cache
        run "$target-cached-c16" --target "$target" --connections 16 --sessions 1000 --client-side-cache
    done
    # Through gateways: the simulator alone against extauth (16 connections), agentgateway
    # with extauth against agentgateway with the no-op ext_authz server (1 and 16).
    run sim-c16 --target sim --connections 16 --sessions 1000 --baseline noop
    for c in 1 16; do
        run "agentgateway-c$c" --target agentgateway --connections "$c" --sessions 1000 --baseline noop
        run "agentgateway-cached-c$c" --target agentgateway --connections "$c" --sessions 1000 \
            --baseline noop --client-side-cache
    done
    # mock-idp's complete logins per second against oidc-provider's, same run.
    "$bin" load --target idp --users 8 --duration "$secs" --quiet --report "$out/idp.json"
    "$bin" bench-table "$out"/http-c1.json "$out"/http-c16.json "$out"/grpc-c1.json "$out"/grpc-c16.json \
        "$out"/http-cached-c1.json "$out"/http-cached-c16.json \
        "$out"/grpc-cached-c1.json "$out"/grpc-cached-c16.json \
        "$out"/sim-c16.json "$out"/agentgateway-c1.json "$out"/agentgateway-c16.json \
        "$out"/agentgateway-cached-c1.json "$out"/agentgateway-cached-c16.json

# Formatting and lints, as CI wants them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Also `npm ci` of the npm peer (oidc-provider) into harness/oidc-provider/. Packages are
# installed without starting their services: port 80 belongs to the stacks' gateways.
# Install what the tests drive when missing: redis-server, chromium, caddy, nginx, docker.io, npm peer.
deps:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v caddy >/dev/null || missing+=(caddy)
    [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)
    command -v dockerd >/dev/null || missing+=(docker.io)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        bash harness/scripts/apt-install-no-start.sh "${missing[@]}"
    fi
    # agentgateway is not a Debian package: the harness takes it from PATH or ../shared/bin
    # (see README, "agentgateway"); without it its matrix rows are skipped and the e2e
    # matrix test fails, saying so.
    command -v agentgateway >/dev/null || [ -x ../shared/bin/agentgateway ] || \
        echo "note: no agentgateway on PATH or at ../shared/bin/agentgateway (README: agentgateway)" >&2
    if [ ! -f harness/oidc-provider/node_modules/oidc-provider/package.json ]; then
        command -v npm >/dev/null || { echo "npm not found: install Node 20+ and npm" >&2; exit 1; }
        (cd harness/oidc-provider && npm ci --no-audit --no-fund --loglevel=error)
    fi
