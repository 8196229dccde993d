#!/bin/sh
# The Dockerfiles' build stage: /opt/venv with the given workspace packages and their third-party
# dependencies pinned by uv.lock, and nothing else (uv stays in /opt/uv, left behind with the stage).
#
#   build-venv [--cli] PACKAGE[EXTRA]...     run in /src, a copy of the repository
#   e.g. build-venv clientml-de[airflow] clientml-mle[monitor]     build-venv --cli clientml-mle clientml-de
#
# Each PACKAGE is a workspace member (clientml-de, clientml-synthetic, clientml-mle, clientml-ds), listed
# with every member it depends on; --cli adds the root package for its `clientml` command, without its
# dependencies (its Airflow and Spark extras stay out of images that do not run them).
set -eu
UV_VERSION=0.13.9
export UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
python3 -m venv /opt/uv
/opt/uv/bin/pip install --quiet --no-cache-dir "uv==$UV_VERSION"
uv=/opt/uv/bin/uv
"$uv" venv --quiet --python "$(command -v python3)" /opt/venv

requirements=""
projects=""
for spec in "$@"; do
    if [ "$spec" = --cli ]; then
        projects="$projects ."
        continue
    fi
    package="${spec%%\[*}"
    extra=""
    [ "$package" != "$spec" ] && extra="--extra $(echo "$spec" | sed 's/.*\[\(.*\)\]/\1/')"
    case "$package" in
        clientml-synthetic) path=modules/de/synthetic ;;
        clientml-*) path="modules/${package#clientml-}" ;;
        *) echo "build-venv: unknown package $package" >&2; exit 2 ;;
    esac
    # shellcheck disable=SC2086  # $extra is empty or two words
    "$uv" export --quiet --frozen --no-dev --no-emit-workspace --no-hashes --package "$package" $extra \
        -o "/tmp/$package.txt"
    requirements="$requirements -r /tmp/$package.txt"
    projects="$projects ./$path"
done
# shellcheck disable=SC2086  # word lists
"$uv" pip install --quiet --python /opt/venv/bin/python $requirements
# shellcheck disable=SC2086
"$uv" pip install --quiet --python /opt/venv/bin/python --no-deps $projects
