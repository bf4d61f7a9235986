#!/usr/bin/env bash
# Entrypoint of migration-harness/postgres: a small subset of the official
# postgres image's docker-entrypoint.sh.
#
# On first start (empty $PGDATA) it runs initdb with POSTGRES_USER as the
# bootstrap superuser and POSTGRES_PASSWORD as its password, opens password
# auth for TCP from anywhere, creates POSTGRES_DB and runs
# /docker-entrypoint-initdb.d/*. All of that happens while no TCP listener
# exists, so a client (e.g. testcontainers' psql readiness probe) only gets
# in once the cluster is fully set up. Then postgres is exec'ed so that it is
# PID 1 and receives `docker stop`'s signal directly.
set -euo pipefail

log() { echo "entrypoint: $*" >&2; }

# `docker run IMAGE -c fsync=off` means "postgres -c fsync=off".
if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

# Anything but the server (bash, psql, ...) runs as is.
if [ "$1" != 'postgres' ]; then
    exec "$@"
fi

# Started as root: fix ownership of the data/socket dirs (a mounted volume may
# be root-owned), then re-run this script as the postgres user. setpriv (from
# util-linux, always present) execs, so PID 1 is kept.
if [ "$(id -u)" = '0' ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # Same rule as the official image: no password means no TCP access,
    # unless trust was asked for explicitly.
    if [ -z "$POSTGRES_PASSWORD" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != 'trust' ]; then
        log "error: database is uninitialized and POSTGRES_PASSWORD is not set"
        log "       (set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password)"
        exit 1
    fi
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

    log "initialising $PGDATA (superuser: $POSTGRES_USER)"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    # The bootstrap superuser gets the password straight from initdb, so no
    # temporary server is needed to set it.
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of arguments
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
        --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host="$auth" \
        ${POSTGRES_INITDB_ARGS:-} >/dev/null
    rm -f "$pwfile"

    printf '\n# Added by the harness entrypoint: clients come from outside the container.\nhost all all all %s\n' \
        "$auth" >>"$PGDATA/pg_hba.conf"
    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

    # The database and the init scripts need a running server, but one that
    # only listens on its unix socket (same as the official image), so the
    # outside world cannot see a half-initialised cluster.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" --dbname postgres)
    if [ "$POSTGRES_DB" != 'postgres' ]; then
        "${psql[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        # shellcheck disable=SC1090  # the init scripts are the user's
        case "$f" in
            *.sh)     log "running $f"; . "$f" ;;
            *.sql)    log "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
            *)        [ -e "$f" ] && log "ignoring $f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    log "initialisation done"
fi

shift
exec postgres "$@"
