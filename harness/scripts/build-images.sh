#!/usr/bin/env bash
# Builds the images the harness asks for, locally (nothing can be pulled on the test
# machines): a root filesystem holding a Debian binary and the libraries `ldd` lists, then
# `docker import` with the entrypoint set.
#   redis:7     /usr/bin/redis-server (apt-get install redis-server)
#   mock-idp    the workspace's mock-idp binary (cargo build -p mock-idp)
# Usage: harness/scripts/build-images.sh [redis] [mock-idp]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v docker >/dev/null || { echo "docker CLI not found (apt-get install docker.io)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "no Docker engine answers: run \`just docker-up\` first" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# rootfs DIR BINARY DEST: copies BINARY to DIR/DEST with its shared libraries and loader.
rootfs() {
    local dir="$1" binary="$2" dest="$3"
    mkdir -p "$dir$(dirname "$dest")" "$dir/tmp" "$dir/etc" "$dir/data"
    chmod 1777 "$dir/tmp"
    cp -L "$binary" "$dir$dest"
    ldd "$binary" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
        mkdir -p "$dir$(dirname "$lib")"
        cp -L "$lib" "$dir$lib"
    done
    # The system's CA bundle, as a real image has it (mock-idp's outgoing https calls).
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        mkdir -p "$dir/etc/ssl/certs"
        cp -L /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/"
    fi
    echo "root:x:0:0:root:/root:/bin/false" > "$dir/etc/passwd"
    echo "root:x:0:" > "$dir/etc/group"
}

# import_as TAG [--change ...]: `docker import` of the root filesystem on stdin as TAG, then
# removes the image that held TAG before, if it was another one (else every build leaves a
# dangling `<none>` image behind). Only that one id, never forced: when a container still
# uses it, or another tag names it, it stays and the build still succeeds.
import_as() {
    local tag="$1" old new
    shift
    old="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
    new="$(docker import "$@" - "$tag")"
    if [ -n "$old" ] && [ "$old" != "$new" ]; then
        docker image rm "$old" >/dev/null 2>&1 \
            || echo "kept the previous $tag image ${old#sha256:} (a container or another tag still uses it)" >&2
    fi
}

build_redis() {
    local binary
    binary="$(command -v redis-server || true)"
    [ -n "$binary" ] || { echo "redis-server not found (apt-get install redis-server)" >&2; exit 1; }
    rootfs "$work/redis" "$binary" /usr/local/bin/redis-server
    tar -C "$work/redis" -c . | import_as redis:7 \
        --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
        --change 'WORKDIR /data' \
        --change 'CMD ["redis-server"]'
    echo "built redis:7 from $binary ($(redis-server --version | grep -o 'v=[0-9.]*'))"
}

build_mock_idp() {
    local target="${CARGO_TARGET_DIR:-$HOME/.cache/oidc-testbed/target}"
    cargo build -q -p mock-idp --bin mock-idp
    rootfs "$work/mock-idp" "$target/debug/mock-idp" /usr/local/bin/mock-idp
    tar -C "$work/mock-idp" -c . | import_as mock-idp:latest \
        --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
        --change 'ENTRYPOINT ["/usr/local/bin/mock-idp"]'
    echo "built mock-idp:latest from $target/debug/mock-idp"
}

what=("$@")
[ ${#what[@]} -gt 0 ] || what=(redis mock-idp)
for image in "${what[@]}"; do
    case "$image" in
        redis) build_redis ;;
        mock-idp) build_mock_idp ;;
        *) echo "unknown image $image (redis, mock-idp)" >&2; exit 1 ;;
    esac
done
