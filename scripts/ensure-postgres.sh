#!/usr/bin/env bash
# Make sure a PostgreSQL server answers at $LEADMAIL_TEST_PG, so the PostgreSQL half of the test
# suite runs instead of failing on a fresh machine or CI runner.
#
# Idempotent: if the server already answers, nothing is touched. Otherwise, on this machine only
# (the URL must point at a loopback host): install the Debian package if missing, start the
# existing cluster or create one that trusts TCP connections from 127.0.0.1 / ::1 (tests run as
# root and connect as "postgres" without a password), then wait until it answers.
#
# Usage: scripts/ensure-postgres.sh            (needs root when it has to install/start/create)
set -euo pipefail

URL="${LEADMAIL_TEST_PG:-postgresql://postgres@127.0.0.1:5432/postgres}"
WAIT_SECONDS="${ENSURE_PG_WAIT_SECONDS:-30}"
# Cluster name; "main" is the Debian default. Overridable so the create path can be exercised on a
# machine that already has a "main" cluster.
CLUSTER="${ENSURE_PG_CLUSTER:-main}"

die() {
    echo "ensure-postgres: ERROR: $*" >&2
    exit 1
}

log() {
    echo "ensure-postgres: $*"
}

# --- parse scheme://[user[:pass]@]host[:port][/db][?query] ----------------------------------
# Any "postgresql+driver://" form is accepted: the tests hand SQLAlchemy a +psycopg URL.
url_re='^postgres(ql)?(\+[a-z0-9]+)?://(([^:@/]*)(:[^@/]*)?@)?(\[[^]]+\]|[^:/?]*)(:([0-9]+))?(/[^?]*)?(\?.*)?$'
if [[ ! "$URL" =~ $url_re ]]; then
    die "cannot parse LEADMAIL_TEST_PG='$URL' (expected postgresql://user@host:port/db)"
fi
PG_USER="${BASH_REMATCH[4]:-postgres}"
PG_HOST="${BASH_REMATCH[6]:-127.0.0.1}"
PG_PORT="${BASH_REMATCH[8]:-5432}"
PG_HOST="${PG_HOST#[}"
PG_HOST="${PG_HOST%]}"

is_ready() {
    # pg_isready may itself be missing before the package is installed.
    command -v pg_isready >/dev/null 2>&1 &&
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -t 2 >/dev/null 2>&1
}

if is_ready; then
    exit 0
fi

case "$PG_HOST" in
127.0.0.1 | localhost | ::1) ;;
*) die "no PostgreSQL answers at $PG_HOST:$PG_PORT, and it is not a local host this script can start" ;;
esac

if [[ $EUID -ne 0 ]]; then
    die "no PostgreSQL answers at $PG_HOST:$PG_PORT; run this script as root to install/start one"
fi

# --- install ------------------------------------------------------------------------------------
if ! command -v pg_createcluster >/dev/null 2>&1 || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    log "PostgreSQL is not installed; installing the Debian package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package's postinst creates and (where an init system allows) starts "<ver> main".
    apt-get install -y -qq postgresql >/dev/null
    if is_ready; then
        log "PostgreSQL installed and answering at $PG_HOST:$PG_PORT"
        exit 0
    fi
fi

# Newest installed server version, e.g. "15".
PG_VERSION="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n 1)"
[[ -n "$PG_VERSION" ]] || die "PostgreSQL package is installed but no server under /usr/lib/postgresql"

HBA_CHANGED=0
ensure_trust_hba() {
    # Passwordless TCP from loopback for every role: the throwaway test databases need nothing more,
    # and the tests (often run as root) connect as user "postgres". Only done for a cluster this
    # script created — an existing cluster's auth is its owner's choice.
    local hba="$1" addr
    for addr in 127.0.0.1/32 ::1/128; do
        if ! grep -Eq "^host[[:space:]]+all[[:space:]]+all[[:space:]]+${addr//./\\.}[[:space:]]+trust" "$hba"; then
            # Prepend: pg_hba.conf is first-match and the package's own lines ask for a password.
            sed -i "1i host    all             all             ${addr}            trust" "$hba"
            HBA_CHANGED=1
        fi
    done
}

# --- start or create ----------------------------------------------------------------------------
existing_main="$(compgen -G "/etc/postgresql/*/$CLUSTER" | sort -V | tail -n 1 || true)"
if [[ -n "$existing_main" ]]; then
    ver="$(basename "$(dirname "$existing_main")")"
    conf_port="$(sed -nE 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' "$existing_main/postgresql.conf" | tail -n 1)"
    if [[ -n "$conf_port" && "$conf_port" != "$PG_PORT" ]]; then
        die "cluster $ver/$CLUSTER is configured for port $conf_port but LEADMAIL_TEST_PG wants port $PG_PORT"
    fi
    log "starting existing cluster $ver/$CLUSTER"
    # --skip-systemctl-redirect: works in containers and CI runners without systemd as PID 1.
    # A cluster that is already running (but not answering yet) makes this fail; the wait decides.
    pg_ctlcluster --skip-systemctl-redirect "$ver" "$CLUSTER" start ||
        log "pg_ctlcluster start returned an error; waiting to see whether the server comes up"
else
    ver="$PG_VERSION"
    log "creating cluster $ver/$CLUSTER on port $PG_PORT"
    pg_createcluster "$ver" "$CLUSTER" -p "$PG_PORT" --start >/dev/null
    ensure_trust_hba "/etc/postgresql/$ver/$CLUSTER/pg_hba.conf"
    if ((HBA_CHANGED)); then
        pg_ctlcluster --skip-systemctl-redirect "$ver" "$CLUSTER" reload
    fi
fi

# --- wait ---------------------------------------------------------------------------------------
deadline=$((SECONDS + WAIT_SECONDS))
until is_ready; do
    if ((SECONDS >= deadline)); then
        die "PostgreSQL did not answer at $PG_HOST:$PG_PORT within ${WAIT_SECONDS}s (see /var/log/postgresql/postgresql-$ver-$CLUSTER.log)"
    fi
    sleep 0.5
done
log "PostgreSQL answers at $PG_HOST:$PG_PORT"
