#!/usr/bin/env bash
# Make sure a Docker engine is running on this machine.
#
# The machine ships only a docker *client* (/usr/local/bin/docker) and no
# engine, and no container registry is reachable, so we install Debian's
# docker.io (which brings dockerd) and start it by hand: there is no systemd
# to do it for us. Idempotent: every step is skipped when already done.
set -euo pipefail

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-30}"

log() { echo "[docker-engine] $*" >&2; }
die() { echo "[docker-engine] ERROR: $*" >&2; exit 1; }

# Run as root directly, or through sudo when we are not root.
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install/start dockerd"
    SUDO="sudo"
fi

# Check for dockerd, not docker: the bare client may already be on PATH.
# iptables is needed by dockerd's default bridge networking; debootstrap is
# needed by ci/images/build.sh to make the base image without a registry.
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
# docker-compose (Debian's 1.29) runs docker-compose.yml in the tests, with the local images.
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
# chromium renders the HTML report in the tests (headless).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt_log="$(mktemp /tmp/harness-apt.XXXXXX)"
    # The package lists may be absent or stale on a fresh machine. apt's
    # chatter is only shown when it fails.
    if ! { $SUDO apt-get update -qq && \
           $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
        tail -n 30 "$apt_log" >&2
        rm -f "$apt_log"
        die "apt-get install ${missing[*]} failed"
    fi
    rm -f "$apt_log"
fi

if docker info >/dev/null 2>&1; then
    log "dockerd already answering"
    exit 0
fi

# Only start a new daemon when none is running: a dockerd that is still
# starting up would otherwise be raced by a second one fighting over the pid
# file and /var/run/docker.sock.
if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    $SUDO mkdir -p "$(dirname "$DOCKERD_LOG")"
    # setsid + nohup: the daemon must outlive this script and the CI step
    # that called it, and must not get the caller's SIGHUP.
    $SUDO setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
fi

for _ in $(seq 1 "$DOCKERD_WAIT_SECONDS"); do
    if docker info >/dev/null 2>&1; then
        log "dockerd is up"
        exit 0
    fi
    sleep 1
done

tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
die "dockerd did not answer 'docker info' within ${DOCKERD_WAIT_SECONDS}s (see $DOCKERD_LOG)"
