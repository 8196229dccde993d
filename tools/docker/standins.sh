#!/usr/bin/env bash
# Local stand-ins for the two public base images the stack uses, for machines that reach no image registry
# (CI here): built from Debian's packages with debootstrap and imported into the running engine.
#
#   clientml-ci/python:3.11-slim-bookworm   for python:3.11-slim-bookworm (Debian's python3 3.11, venv, pip)
#   clientml-ci/postgres:15                 for postgres:15 (Debian's postgresql-15, same entrypoint contract)
#
# The host's CA bundle is copied into both, because outbound TLS here goes through a local CA (pip would
# fail with CERTIFICATE_VERIFY_FAILED); the production Dockerfiles never carry it. Images already present
# are kept. Needs root, debootstrap and DOCKER_HOST (tools/docker/engine.sh start).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
CA=/etc/ssl/certs/ca-certificates.crt
TLS_ENV=(--change "ENV SSL_CERT_FILE=$CA" --change "ENV PIP_CERT=$CA" --change "ENV REQUESTS_CA_BUNDLE=$CA")

rootfs() {  # rootfs NAME PACKAGES: a minimal bookworm tree under $WORK/NAME
    debootstrap --variant=minbase --include="$2" bookworm "$WORK/$1" "$MIRROR" >"$WORK/$1.log" 2>&1 \
        || { tail -20 "$WORK/$1.log" >&2; return 1; }
    cp "$CA" "$WORK/$1$CA"
    rm -rf "$WORK/$1"/var/cache/apt/archives/*.deb "$WORK/$1"/var/lib/apt/lists/*
}

python_image() {
    local tag=clientml-ci/python:3.11-slim-bookworm
    docker image inspect "$tag" >/dev/null 2>&1 && return
    rootfs python python3,python3-venv,python3-pip,ca-certificates
    tar -C "$WORK/python" -c . | docker import "${TLS_ENV[@]}" --change 'CMD ["python3"]' - "$tag" >/dev/null
    echo "built $tag"
}

postgres_image() {
    local tag=clientml-ci/postgres:15
    docker image inspect "$tag" >/dev/null 2>&1 && return
    rootfs postgres postgresql-15,ca-certificates
    install -m 0755 "$HERE/standins/postgres-entrypoint.sh" "$WORK/postgres/usr/local/bin/docker-entrypoint.sh"
    mkdir -p "$WORK/postgres/docker-entrypoint-initdb.d"
    tar -C "$WORK/postgres" -c . | docker import "${TLS_ENV[@]}" \
        --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' --change 'EXPOSE 5432' - "$tag" >/dev/null
    echo "built $tag"
}

python_image &
py=$!
postgres_image &
pg=$!
wait "$py" && wait "$pg"
