#!/usr/bin/env bash
# Install what the tests need on Debian 12 and run them all: lint, types, pytest.
# The database tests run on SQLite and on a throwaway PostgreSQL cluster
# (or the one PASSERELLE_TEST_PG names).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/system-packages.sh test
bash deploy/venv.sh test
.venv/bin/ruff check .
.venv/bin/mypy
# Test files run side by side (pytest-xdist), each file whole in one process:
# most of the suite waits on real servers, namespaces and timers rather than
# the CPU, so three processes on two cores about halve the time.
# PASSERELLE_TEST_WORKERS=0 runs it in one process. The slowest tests are
# listed at the end: CI must stay under 40 minutes.
workers=${PASSERELLE_TEST_WORKERS:-3}
set +e
if [ "$workers" = 0 ]; then
    .venv/bin/pytest --durations=20 "$@"
else
    .venv/bin/pytest -n "$workers" --dist loadfile --durations=20 "$@"
fi
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
