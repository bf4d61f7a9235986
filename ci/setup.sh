#!/usr/bin/env bash
# One-stop setup of what the PostgreSQL and MySQL backends need on a machine
# without a container registry: a running Docker engine and locally built
# database images (see ci/docker-engine.sh and ci/images/build.sh).
#
# Progress goes to stderr; stdout is only the `export` lines, so a shell can
# take them over with:   eval "$(bash ci/setup.sh)"
# Idempotent: a second run only checks and returns within seconds.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

bash "$HERE/docker-engine.sh"
# build.sh prints the tags it built; keep stdout for the exports below.
bash "$HERE/images/build.sh" >&2

cat <<EXPORTS
export HARNESS_POSTGRESQL_IMAGE=${HARNESS_LOCAL_POSTGRES_IMAGE:-migration-harness/postgres:15}
export HARNESS_MYSQL_IMAGE=${HARNESS_LOCAL_MARIADB_IMAGE:-migration-harness/mariadb:10.11}
export TESTCONTAINERS_RYUK_DISABLED=true
export TESTCONTAINERS_CONNECTION_MODE=docker_host
export DOCKER_BUILDKIT=0
EXPORTS
