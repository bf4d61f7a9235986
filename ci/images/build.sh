#!/usr/bin/env bash
# Build the database images the harness runs its PostgreSQL and MySQL
# backends in, entirely from Debian packages.
#
# No container registry is reachable from this machine (nor from CI), so
# `postgres:16` / `mysql:8.4` cannot be pulled. Instead we debootstrap a
# minimal Debian bookworm from the same mirror apt already uses, import it as
# a base image, and install Debian's postgresql-15 and mariadb-server 10.11
# on top. The entrypoints mimic the official images' environment variables,
# so testcontainers' PostgresContainer / MySqlContainer drive them unchanged.
#
# Idempotent: an image is only (re)built when it is missing, or (for the
# database images) when its Dockerfile/entrypoint changed since it was built.
# Needs a running dockerd (see ci/docker-engine.sh) and root for debootstrap.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

BASE_IMAGE="${HARNESS_LOCAL_BASE_IMAGE:-migration-harness/bookworm:base}"
POSTGRES_IMAGE="${HARNESS_LOCAL_POSTGRES_IMAGE:-migration-harness/postgres:15}"
MARIADB_IMAGE="${HARNESS_LOCAL_MARIADB_IMAGE:-migration-harness/mariadb:10.11}"
SUITE="${HARNESS_DEBIAN_SUITE:-bookworm}"

# BuildKit is not packaged with Debian's docker.io; the legacy builder is.
export DOCKER_BUILDKIT=0

log() { echo "[images] $*" >&2; }
die() { echo "[images] ERROR: $*" >&2; exit 1; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Print the URI of the first enabled Debian source for suite $1 with the
# `main` component, from both the deb822 (*.sources) and the one-line
# (sources.list, *.list) formats. Requiring the exact suite name and `main`
# leaves out third-party repositories (nodesource, cloud-sdk, docker, ...).
apt_mirror_for_suite() {
    local suite="$1" f
    shopt -s nullglob
    for f in /etc/apt/sources.list.d/*.sources; do
        awk -v suite="$suite" '
            function flush() {
                if (uri != "" && enabled && is_deb && has_suite && has_main) { print uri; found = 1; exit }
                uri = ""; enabled = 1; is_deb = 0; has_suite = 0; has_main = 0
            }
            BEGIN { enabled = 1 }
            /^[[:space:]]*$/ { flush(); next }
            /^[[:space:]]*#/ { next }
            tolower($1) == "enabled:"    { enabled = (tolower($2) != "no") }
            tolower($1) == "types:"      { for (i = 2; i <= NF; i++) if ($i == "deb") is_deb = 1 }
            tolower($1) == "uris:"       { uri = $2 }
            tolower($1) == "suites:"     { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
            tolower($1) == "components:" { for (i = 2; i <= NF; i++) if ($i == "main") has_main = 1 }
            END { if (!found) flush() }
        ' "$f" | head -n 1
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI SUITE COMPONENT...
        awk -v suite="$suite" '
            $1 != "deb" { next }
            { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } }
            $(i + 1) == suite { for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit } }
        ' "$f"
    done
    shopt -u nullglob
}

build_base() {
    if image_exists "$BASE_IMAGE"; then
        log "$BASE_IMAGE exists, skipping"
        return
    fi
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap not installed (run ci/docker-engine.sh)"

    local mirror security rootfs
    mirror="$(apt_mirror_for_suite "$SUITE" | head -n 1)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    security="$(apt_mirror_for_suite "$SUITE-security" | head -n 1)"
    log "debootstrapping $SUITE from $mirror"

    rootfs="$(mktemp -d /tmp/harness-rootfs.XXXXXX)"
    # shellcheck disable=SC2064  # expand now: the trap must remove this dir
    trap "rm -rf '$rootfs'" EXIT

    debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
        || { tail -n 30 "$rootfs.log" >&2; rm -f "$rootfs.log"; die "debootstrap failed"; }
    rm -f "$rootfs.log"

    # apt inside the image must reach the same mirror as the host, which may
    # be the only one reachable; only Debian's own suites are listed.
    rm -f "$rootfs/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$mirror" "$SUITE" "$SUITE"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [ -n "$security" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$SUITE"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } >"$rootfs/etc/apt/sources.list.d/debian.sources"

    # The host's mirror may serve a frozen snapshot whose Release files have
    # expired; the host tolerates that, so the image must too.
    printf 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n' \
        >"$rootfs/etc/apt/apt.conf.d/99harness-mirror"
    # Same tweaks as Debian's official docker images: no daemons started by
    # package scripts (there is no init), no recommends, no docs/man/locales.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$rootfs/etc/apt/apt.conf.d/99harness-no-recommends"
    mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/lintian/*' \
        >"$rootfs/etc/dpkg/dpkg.cfg.d/99harness-slim"
    # Nothing host-specific or cached in the image.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log \
        "$rootfs"/debootstrap
    : >"$rootfs/etc/hostname"

    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["bash"]' \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    log "built $BASE_IMAGE"
}

# Hash of everything in a build context, stored as an image label so that an
# edited Dockerfile or entrypoint triggers a rebuild on the next run.
context_hash() {
    (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}

build_db_image() {
    local tag="$1" context="$2" hash current
    hash="$(context_hash "$context")"
    current="$(docker image inspect --format '{{ index .Config.Labels "org.migration-harness.context" }}' "$tag" 2>/dev/null || true)"
    if [ "$current" = "$hash" ]; then
        log "$tag is up to date, skipping"
        return
    fi
    log "building $tag from $context"
    # The build's own output (and the legacy builder's deprecation notice) is
    # only worth showing when the build fails.
    local build_log
    build_log="$(mktemp /tmp/harness-build.XXXXXX)"
    if ! docker build \
        --build-arg "BASE_IMAGE=$BASE_IMAGE" \
        --label "org.migration-harness.context=$hash" \
        -t "$tag" "$context" >"$build_log" 2>&1; then
        tail -n 40 "$build_log" >&2
        rm -f "$build_log"
        die "docker build of $tag failed"
    fi
    rm -f "$build_log"
    log "built $tag"
}

docker info >/dev/null 2>&1 || die "no docker engine answering (run ci/docker-engine.sh first)"

build_base
build_db_image "$POSTGRES_IMAGE" "$HERE/postgres"
build_db_image "$MARIADB_IMAGE" "$HERE/mariadb"
# Earlier builds of the same tags, now untagged, only take disk space; the
# label filter keeps this away from anybody else's images.
docker image prune -f --filter label=org.migration-harness.context >/dev/null 2>&1 || true

echo "$POSTGRES_IMAGE"
echo "$MARIADB_IMAGE"
