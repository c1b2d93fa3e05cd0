#!/usr/bin/env bash
# Install a site box on Debian 12, as root, from the source tree this script
# sits in: the Debian packages, /opt/passerelle/.venv from the hashed lock,
# the portal's user, /etc/passerelle, IP forwarding, the systemd units (not
# started); then, given a code, the enrolment (which starts the services);
# then `passerelle gateway check-config` and `passerelle gateway doctor`,
# whose verdict is the installer's exit status. Run it again to upgrade: the
# configuration and the state directory are kept, the daemon restarts, and
# the kernel keeps enforcing the sessions meanwhile (docs/install.md).
#
#   deploy/install-box.sh [--code CODE --centre URL [--ca-file PEM] [--force]]
#                         [--root DIR] [--no-packages]
#
# --root DIR installs into DIR instead of / (files, users, units; nothing is
# started, enrolled or checked: that is the box's own business), --no-packages
# skips apt.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/install-lib.sh
source "$SRC/deploy/install-lib.sh"

ROOT="" PACKAGES=yes CODE="" CENTRE="" CA_FILE="" FORCE=()
usage() { sed -n '11,12s/^#   //p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --code) CODE=${2:?--code needs the code}; shift 2 ;;
        --centre) CENTRE=${2:?--centre needs the centre\'s https:// address}; shift 2 ;;
        --ca-file) CA_FILE=$(realpath "${2:?--ca-file needs a file}"); shift 2 ;;
        --force) FORCE=(--force); shift ;;
        --root) ROOT=$(realpath -m "${2:?--root needs a directory}"); shift 2 ;;
        --no-packages) PACKAGES=no; shift ;;
        -h|--help) usage ;;
        *) echo "install: unknown option $1" >&2; usage ;;
    esac
done
[ "$ROOT" != / ] || ROOT=""
[ "$(id -u)" -eq 0 ] || die "run me as root (sudo $0 ...)"
if { [ -n "$CODE" ] && [ -z "$CENTRE" ]; } || { [ -z "$CODE" ] && [ -n "$CENTRE" ]; }; then
    die "give --code and --centre together (the code from ops, the centre's https:// address)"
fi
if [ -n "$ROOT" ] && [ -n "$CODE" ]; then
    die "enrol on the box itself, not into --root $ROOT"
fi

if [ "$PACKAGES" = yes ]; then
    bash "$SRC/deploy/system-packages.sh" box
fi
install_venv

# The portal's user; its group also reaches the daemon's control socket.
ensure_user passerelle-portal /nonexistent
# Root's, and the portal's group may cross it to read gateway.toml (and a
# portal certificate's key); the secrets inside are root's alone (0600).
ensure_dir /etc/passerelle root passerelle-portal 0750
# The box forwards between its LAN and its WAN.
mkdir -p "$ROOT/etc/sysctl.d"
install -m 0644 /dev/stdin "$ROOT/etc/sysctl.d/90-passerelle-gateway.conf" <<'EOF'
# Written by Passerelle's deploy/install-box.sh: the box routes its LAN.
net.ipv4.ip_forward = 1
net.ipv6.conf.all.forwarding = 1
# Forwarding turns router advertisements off; the WAN may still need them.
net.ipv6.conf.default.accept_ra = 2
net.ipv6.conf.all.accept_ra = 2
EOF
if [ -z "$ROOT" ]; then
    sysctl -q -p /etc/sysctl.d/90-passerelle-gateway.conf
fi
install_units passerelle-gateway.service passerelle-portal.service

if [ -n "$ROOT" ]; then
    say "installed into $ROOT (not enrolled, nothing started)"
    exit 0
fi
CONFIG=/etc/passerelle/gateway.toml
if [ -n "$CODE" ] && [ -f "$CONFIG" ] && [ ${#FORCE[@]} -eq 0 ]; then
    say "already enrolled ($CONFIG): not enrolling again (--force to do so)"
elif [ -n "$CODE" ]; then
    ca=()
    [ -z "$CA_FILE" ] || ca=(--ca-file "$CA_FILE")
    passerelle gateway enroll --code "$CODE" --centre "$CENTRE" "${ca[@]}" "${FORCE[@]}"
    # The portal reads it through its group; nobody else needs to.
    chgrp passerelle-portal "$CONFIG"
    chmod 0640 "$CONFIG"
    if [ ${#FORCE[@]} -gt 0 ] && live; then
        # Enrolled again: running services read the new identity.
        systemctl try-restart passerelle-gateway.service passerelle-portal.service
    fi
elif live; then
    # An upgrade: the new version runs; sessions stay enforced by the kernel meanwhile.
    systemctl try-restart passerelle-gateway.service passerelle-portal.service
fi
if [ ! -f "$CONFIG" ]; then
    say "installed; not enrolled yet: ask ops for a code, then"
    say "  $0 --code CODE --centre https://centre.example.net"
    exit 0
fi
passerelle gateway check-config --config "$CONFIG"
passerelle gateway doctor --config "$CONFIG"
