#!/usr/bin/env bash
# apt-get install the given packages (as root, or with sudo) without starting their services:
# Debian's nginx and caddy packages would otherwise start a server on port 80 of every
# address, where the testbed's gateways listen on 127.0.0.N:80. A policy-rc.d that refuses
# every start is in place only while installing (an existing one is left alone).
set -euo pipefail
[ $# -gt 0 ] || exit 0
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
policy=/usr/sbin/policy-rc.d
ours=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    ours=1
fi
cleanup() { if [ "$ours" -eq 1 ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
