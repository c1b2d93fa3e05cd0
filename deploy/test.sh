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
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
