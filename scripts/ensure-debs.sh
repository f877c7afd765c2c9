#!/usr/bin/env bash
# Install the given Debian packages, but only those dpkg does not already report as installed, so
# `make` targets can call this on every run at no cost (no network, no root needed when nothing is
# missing). At most one `apt-get update`.
#
# Usage: scripts/ensure-debs.sh PKG [PKG...]     e.g. scripts/ensure-debs.sh dovecot-imapd redis-server
set -euo pipefail

if (($# == 0)); then
    echo "usage: $0 PKG [PKG...]" >&2
    exit 2
fi

missing=()
for pkg in "$@"; do
    # "install ok installed" is the only state in which the package's files are really there;
    # a removed-but-not-purged package still has a dpkg record.
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    echo "ensure-debs: ERROR: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
fi

echo "ensure-debs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
