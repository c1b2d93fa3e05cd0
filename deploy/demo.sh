#!/usr/bin/env bash
# Install what the demo needs on Debian 12 and run it: the central RADIUS
# server with the demo network, on 127.0.0.1 (it prints how to try it).
# Options go to `passerelle demo` (--data DIR, --auth-port, --acct-port).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/system-packages.sh demo
bash deploy/venv.sh
exec .venv/bin/passerelle demo "$@"
