#!/usr/bin/env bash
# Install the Debian 12 packages Passerelle needs, only those missing.
# Usage: deploy/system-packages.sh demo|test|box|centre
set -euo pipefail
# The demo runs a whole site in network namespaces: the box's tools come too,
# and every program the commands it prints use (radtest, curl, chromium).
want=(python3 python3-venv python3-dev gcc freeradius-utils nftables dnsmasq iproute2
      isc-dhcp-client curl iperf3 tcpdump procps chromium)
if [ "${1:-test}" = test ]; then
    want+=(postgresql freeradius freeradius-postgresql radsecproxy wrk zbar-tools hostapd
           wpasupplicant)
fi
# What a site box and the centre run (deploy/install-box.sh, install-centre.sh):
# no compiler, no test tool.
if [ "${1:-test}" = box ]; then
    want=(python3 python3-venv nftables dnsmasq-base iproute2 curl)
elif [ "${1:-test}" = centre ]; then
    want=(python3 python3-venv postgresql)
fi
missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "Installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
# FreeRADIUS is a peer the tests start themselves; its packaged service must
# not hold the RADIUS ports.
if command -v systemctl >/dev/null && systemctl is-enabled freeradius >/dev/null 2>&1; then
    systemctl disable --now freeradius >/dev/null 2>&1 || true
fi
