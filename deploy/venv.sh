#!/usr/bin/env bash
# Create .venv and install Passerelle into it (editable): every dependency at
# the version and hash of deploy/requirements.lock (the test tools included,
# one lock for the demo and the tests), then Passerelle itself without
# resolving anything again. docs/install.md says how to update the lock.
# "$1" (extras, e.g. test) is accepted for the callers: the lock has them all.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q --require-hashes -r deploy/requirements.lock
# setuptools notes every editable install ("Editable installation."): not a
# problem, so not shown; every other warning is.
PYTHONWARNINGS="ignore:Editable installation" \
    .venv/bin/pip install -q --no-deps -e .
# pip compiles an installed wheel, not an editable install's sources: where
# PYTHONDONTWRITEBYTECODE is set (CI's machines) every process would compile
# them again at each start (0.1 s of the portal's start, issue 12's budget).
.venv/bin/python -m compileall -q passerelle gateway portal radius >/dev/null
