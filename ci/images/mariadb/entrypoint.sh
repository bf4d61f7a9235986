#!/usr/bin/env bash
# Entrypoint of migration-harness/mariadb: a small subset of the official
# mariadb image's docker-entrypoint.sh.
#
# On first start (no /var/lib/mysql/mysql) it initialises the data dir,
# starts a temporary server without networking, creates the accounts and the
# database from the environment, runs /docker-entrypoint-initdb.d/*, stops
# the temporary server, and finally execs the real server (PID 1, so
# `docker stop`'s SIGTERM reaches it). Like the official image, "ready for
# connections" is thus logged twice, which is what testcontainers'
# MySqlContainer waits for.
set -euo pipefail

log() { echo "entrypoint: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [ "${1:0:1}" = '-' ]; then
    set -- mariadbd "$@"
fi
case "$1" in
    mariadbd | mysqld) ;;
    *) exec "$@" ;;  # bash, mariadb, ... run as is
esac

# Started as root: fix ownership (a mounted volume may be root-owned), then
# re-run this script as mysql; setpriv execs, so PID 1 is kept.
if [ "$(id -u)" = '0' ]; then
    mkdir -p /var/lib/mysql /run/mysqld
    chown -R mysql:mysql /var/lib/mysql /run/mysqld
    exec setpriv --reuid=mysql --regid=mysql --init-groups "${BASH_SOURCE[0]}" "$@"
fi

# MARIADB_* wins over its MYSQL_* alias, as in the official mariadb image.
env_or_alias() {
    local mariadb="MARIADB_$1" mysql="MYSQL_${2:-$1}"
    printf '%s' "${!mariadb:-${!mysql:-}}"
}
ROOT_PASSWORD="$(env_or_alias ROOT_PASSWORD)"
ROOT_HOST="$(env_or_alias ROOT_HOST)"; ROOT_HOST="${ROOT_HOST:-%}"
ALLOW_EMPTY="$(env_or_alias ALLOW_EMPTY_ROOT_PASSWORD ALLOW_EMPTY_PASSWORD)"
RANDOM_ROOT="$(env_or_alias RANDOM_ROOT_PASSWORD)"
DATABASE="$(env_or_alias DATABASE)"
DB_USER="$(env_or_alias USER)"
DB_PASSWORD="$(env_or_alias PASSWORD)"

# SQL string literal / identifier quoting for values taken from the env.
sql_string() { local s="${1//\\/\\\\}"; printf "'%s'" "${s//\'/\\\'}"; }
# shellcheck disable=SC2016  # literal backticks
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }

SOCKET=/run/mysqld/mysqld.sock

if [ ! -d /var/lib/mysql/mysql ]; then
    if [ -z "$ROOT_PASSWORD" ] && [ -z "$ALLOW_EMPTY" ] && [ -z "$RANDOM_ROOT" ]; then
        die "database is uninitialized and no root password option is set (MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD or MYSQL_RANDOM_ROOT_PASSWORD)"
    fi
    if [ -n "$RANDOM_ROOT" ] && [ -z "$ROOT_PASSWORD" ]; then
        ROOT_PASSWORD="$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)"
        log "GENERATED ROOT PASSWORD: $ROOT_PASSWORD"
    fi

    log "initialising /var/lib/mysql"
    # Same flags as the official image: no test db, passwordless root for
    # now (it gets its password below), and nothing slow we don't need.
    mariadb-install-db --datadir=/var/lib/mysql --skip-test-db \
        --auth-root-authentication-method=normal --skip-name-resolve \
        --skip-log-bin --default-time-zone=SYSTEM --enforce-storage-engine= \
        --loose-innodb_buffer_pool_load_at_startup=0 \
        --loose-innodb_buffer_pool_dump_at_shutdown=0 >/dev/null

    # Temporary server: socket only, so nobody outside sees it half set up.
    mariadbd "${@:2}" --skip-networking --socket="$SOCKET" --skip-log-bin \
        --default-time-zone=SYSTEM --wsrep-on=OFF \
        --loose-innodb_buffer_pool_load_at_startup=0 \
        --loose-innodb_buffer_pool_dump_at_shutdown=0 &
    tmp_pid=$!
    for _ in $(seq 1 60); do
        mariadb-admin --socket="$SOCKET" -uroot --silent ping >/dev/null 2>&1 && break
        kill -0 "$tmp_pid" 2>/dev/null || die "temporary server exited during initialisation"
        sleep 0.5
    done
    mariadb-admin --socket="$SOCKET" -uroot --silent ping >/dev/null 2>&1 \
        || die "temporary server did not come up"

    {
        echo "SET @@SESSION.SQL_LOG_BIN=0;"
        # mariadb-install-db also makes password-less root@127.0.0.1, @::1
        # and @<hostname>; a TCP login from inside the container would hit
        # those instead of root@'%'. The official image drops them too.
        echo "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1';"
        # shellcheck disable=SC2028  # the backslashes are for SQL, not echo
        echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname, '\\'');"
        # root from anywhere (ROOT_HOST) with the root password, like the
        # official image; root@localhost gets the same password.
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$ROOT_PASSWORD");"
        if [ "$ROOT_HOST" != 'localhost' ]; then
            echo "CREATE USER 'root'@$(sql_string "$ROOT_HOST") IDENTIFIED BY $(sql_string "$ROOT_PASSWORD");"
            echo "GRANT ALL ON *.* TO 'root'@$(sql_string "$ROOT_HOST") WITH GRANT OPTION;"
            echo "GRANT PROXY ON ''@'%' TO 'root'@$(sql_string "$ROOT_HOST") WITH GRANT OPTION;"
        fi
        if [ -n "$DATABASE" ]; then
            echo "CREATE DATABASE IF NOT EXISTS $(sql_ident "$DATABASE");"
        fi
        if [ -n "$DB_USER" ] && [ "$DB_USER" != 'root' ]; then
            echo "CREATE USER $(sql_string "$DB_USER")@'%' IDENTIFIED BY $(sql_string "$DB_PASSWORD");"
            if [ -n "$DATABASE" ]; then
                echo "GRANT ALL ON $(sql_ident "$DATABASE").* TO $(sql_string "$DB_USER")@'%';"
            fi
            # Unlike the official image: on *.* too, so a harness running as
            # this user can create and drop scratch databases.
            echo "GRANT ALL ON *.* TO $(sql_string "$DB_USER")@'%';"
        elif [ "$DB_USER" = 'root' ]; then
            log "MYSQL_USER=root ignored: root already exists"
        fi
        echo "FLUSH PRIVILEGES;"
    } | mariadb --socket="$SOCKET" -uroot --batch

    # From here on root has its password (MYSQL_PWD is read by the client).
    export MYSQL_PWD="$ROOT_PASSWORD"
    sql=(mariadb --socket="$SOCKET" -uroot --batch)
    [ -n "$DATABASE" ] && sql+=("--database=$DATABASE")
    for f in /docker-entrypoint-initdb.d/*; do
        # shellcheck disable=SC1090  # the init scripts are the user's
        case "$f" in
            *.sh)     log "running $f"; . "$f" ;;
            *.sql)    log "running $f"; "${sql[@]}" <"$f" ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | "${sql[@]}" ;;
            *)        [ -e "$f" ] && log "ignoring $f" ;;
        esac
    done
    unset MYSQL_PWD

    kill -TERM "$tmp_pid"
    wait "$tmp_pid" || die "temporary server did not shut down cleanly"
    log "initialisation done"
fi

exec "$@"
