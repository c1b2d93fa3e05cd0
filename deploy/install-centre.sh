#!/usr/bin/env bash
# Install the centre on Debian 12, as root, from the source tree this script
# sits in: PostgreSQL, /opt/passerelle/.venv from the hashed lock, the
# passerelle user, a PostgreSQL role and database of the same name (peer
# authentication: no password anywhere), the server key file, the
# environment of the services (/etc/passerelle/radius.env), the schema
# (`passerelle db upgrade`), the RADIUS service and the console, enabled and
# started, and the first network-ops operator. Run it again to upgrade: the
# key, the environment and the database are kept, the services restart.
#
#   deploy/install-centre.sh [--db-url URL] [--operator LOGIN] [--root DIR] [--no-packages]
#
# --db-url URL: an existing database instead of a local one (nothing is
# created in PostgreSQL). --operator LOGIN: the first operator, their password
# read from stdin (without it, a terminal is asked for both; otherwise none
# is added). --root DIR installs into DIR instead of / (nothing is started),
# --no-packages skips apt.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/install-lib.sh
source "$SRC/deploy/install-lib.sh"

ROOT="" PACKAGES=yes DB_URL="" OPERATOR=""
usage() { sed -n '11s/^#   //p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --db-url) DB_URL=${2:?--db-url needs a database URL}; shift 2 ;;
        --operator) OPERATOR=${2:?--operator needs a login}; shift 2 ;;
        --root) ROOT=$(realpath -m "${2:?--root needs a directory}"); shift 2 ;;
        --no-packages) PACKAGES=no; shift ;;
        -h|--help) usage ;;
        *) echo "install: unknown option $1" >&2; usage ;;
    esac
done
[ "$ROOT" != / ] || ROOT=""
[ "$(id -u)" -eq 0 ] || die "run me as root (sudo $0 ...)"

ENV=/etc/passerelle/radius.env
KEY=/etc/passerelle/server.key
DATA=/var/lib/passerelle
LOCAL_DB="postgresql://passerelle@/passerelle?host=/var/run/postgresql"

if [ "$PACKAGES" = yes ]; then
    bash "$SRC/deploy/system-packages.sh" centre
fi
install_venv
ensure_user passerelle "$DATA"
ensure_dir /etc/passerelle root passerelle 0750
ensure_dir "$DATA" passerelle passerelle 0700

# The database: the one given, else the one already configured, else a local one.
if [ -z "$DB_URL" ] && [ -f "$ROOT$ENV" ]; then
    DB_URL=$(sed -n 's/^PASSERELLE_DB=//p' "$ROOT$ENV")
fi
if [ -z "$DB_URL" ]; then
    [ -z "$ROOT" ] || die "give --db-url with --root (a local database is made in / only)"
    DB_URL=$LOCAL_DB
    # As postgres over its socket (peer authentication); each step only if missing.
    as_postgres() { runuser -u postgres -- "$@"; }
    if [ "$(as_postgres psql -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'passerelle'")" != 1 ]
    then
        as_postgres createuser passerelle
        say "PostgreSQL role passerelle"
    fi
    if [ "$(as_postgres psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'passerelle'")" \
         != 1 ]; then
        as_postgres createdb --owner passerelle --encoding UTF8 passerelle
        say "PostgreSQL database passerelle"
    fi
fi

# The services' environment; its database URL may hold a password: root and
# the passerelle group only.
env_text="# Written by Passerelle's deploy/install-centre.sh; read by the RADIUS
# service and the console (EnvironmentFile=). A re-run keeps its database.
PASSERELLE_DB=$DB_URL
PASSERELLE_DATA=$DATA
PASSERELLE_KEY_FILE=$KEY
PASSERELLE_METRICS=127.0.0.1:9465"
if [ "$(cat "$ROOT$ENV" 2>/dev/null)" != "$env_text" ]; then
    printf '%s\n' "$env_text" | install -m 0640 -o 0 -g "$(gid_of passerelle)" /dev/stdin \
        "$ROOT$ENV"
    say "environment $ENV"
fi
chown "0:$(gid_of passerelle)" "$ROOT$ENV"
chmod 0640 "$ROOT$ENV"
# As the services' user on the machine itself; into --root, as root with
# the same environment (the root's users are not this machine's).
as_passerelle() {
    if [ -z "$ROOT" ]; then
        runuser -u passerelle -- env PASSERELLE_DB="$DB_URL" PASSERELLE_DATA="$DATA" \
            PASSERELLE_KEY_FILE="$KEY" "$@"
    else
        PASSERELLE_DB="$DB_URL" PASSERELLE_DATA="$ROOT$DATA" PASSERELLE_KEY_FILE="$ROOT$KEY" "$@"
    fi
}

# The key that seals the CHAP secrets and the enrolment CA's key: made once,
# 0600, the services' user's; every central node needs the same file.
if [ ! -f "$ROOT$KEY" ]; then
    PASSERELLE_KEY_FILE="$ROOT$KEY" "$ROOT$VENV/bin/python" -I -c \
        'from passerelle.radius.passwords import server_key; server_key()'
    say "server key $KEY (copy it to every central node)"
fi
chown "$(uid_of passerelle):$(gid_of passerelle)" "$ROOT$KEY"
chmod 0600 "$ROOT$KEY"

passerelle_as() { as_passerelle "$ROOT$VENV/bin/python" -I -c "$MAIN" "$@"; }
passerelle_as db upgrade

# The first operator of the console, with every right (network-ops).
if [ -z "$OPERATOR" ] && [ -t 0 ] && ! passerelle_as admin operator list | grep -q network-ops
then
    read -r -p "The first operator's login (their e-mail address): " OPERATOR
fi
if [ -n "$OPERATOR" ]; then
    if passerelle_as admin operator list | awk -v l="$OPERATOR" '$1 == l { f = 1 } END { exit !f }'; then
        say "operator $OPERATOR already there"
    else
        if [ -t 0 ]; then
            read -r -s -p "Their password (12 characters or more): " password; echo
        else
            IFS= read -r password || true
        fi
        printf '%s\n' "$password" | passerelle_as admin operator add "$OPERATOR" \
            --role network-ops --password-file -
        unset password
    fi
fi

install_units passerelle-radius.service passerelle-console.service
if live; then
    systemctl enable --quiet passerelle-radius.service passerelle-console.service
    # Started, or restarted on the new version.
    systemctl restart passerelle-radius.service passerelle-console.service
    say "running: passerelle-radius (UDP 1812, 1813), passerelle-console (127.0.0.1:8090)"
else
    say "installed into ${ROOT:-/} (nothing started)"
fi
