#!/usr/bin/env bash
# Create .venv and install Passerelle into it (editable), with extras "$1".
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
extras=${1:-}
.venv/bin/pip install -q --upgrade pip >/dev/null
# setuptools notes every editable install ("Editable installation."): not a
# problem, so not shown; every other warning is.
PYTHONWARNINGS="ignore:Editable installation" \
    .venv/bin/pip install -q -e ".${extras:+[$extras]}"
