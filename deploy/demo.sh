#!/usr/bin/env bash
# Install what the demo needs on Debian 12 and run it: the central RADIUS
# server with the demo network on 127.0.0.1 and, as root, a whole site beside
# it in network namespaces (a laptop, the box with its portal, the internet).
# It prints how to try both. Options go to `passerelle demo`
# (--data DIR, --auth-port, --acct-port, --site).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/system-packages.sh demo
bash deploy/venv.sh
site=()
if [ "$(id -u)" -eq 0 ]; then
    site=(--site)
else
    echo "Not root: the demo runs the centre only (the site needs network namespaces)." >&2
fi
exec .venv/bin/passerelle demo "${site[@]}" "$@"
