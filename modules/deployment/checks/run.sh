#!/usr/bin/env bash
# The offline checks of the deployment, one by one or all: what `make deploy-check` and
# tests/deployment/test_terraform_checks.py run. No AWS is contacted: Terraform uses the provider on disk
# and a mocked AWS, checkov reads the files, actionlint the workflows.
#
#   modules/deployment/checks/run.sh [fmt|validate|test|checkov|actionlint|all]   (default: all)
#
# Needs terraform (>= 1.11) on PATH and the AWS provider under TF_PLUGIN_DIR (default /opt/tf-plugins);
# checkov comes from this folder's own lock (its pins clash with Airflow's, so not the workspace's),
# actionlint from the workspace's dev group (.venv).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
TF_DIR="$ROOT/modules/deployment/terraform"
TF_PLUGIN_DIR="${TF_PLUGIN_DIR:-/opt/tf-plugins}"
UV="${UV:-$(command -v uv || echo "$HOME/.local/bin/uv")}"
export CHECKPOINT_DISABLE=1          # no Terraform version check calls home
export BC_SKIP_MAPPING=TRUE          # checkov: no download of Prisma Cloud's guideline mapping
export CKV_SKIP_PACKAGE_UPDATE_CHECK=TRUE  # checkov: no PyPI version check

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "deploy-check: $1 not found: $2" >&2; exit 2; }
}

tf_init() {
  need terraform "install Terraform >= 1.11 (the checks use the AWS provider under $TF_PLUGIN_DIR)"
  [[ -d "$TF_PLUGIN_DIR/registry.terraform.io/hashicorp/aws" ]] ||
    { echo "deploy-check: no AWS provider under $TF_PLUGIN_DIR (set TF_PLUGIN_DIR)" >&2; exit 2; }
  terraform -chdir="$TF_DIR" init -backend=false -plugin-dir="$TF_PLUGIN_DIR" -input=false -no-color >/dev/null
}

check_fmt() {
  need terraform "install Terraform >= 1.11"
  terraform -chdir="$TF_DIR" fmt -check -recursive -diff -no-color
  echo "fmt: every file is formatted"
}

check_validate() {
  tf_init
  terraform -chdir="$TF_DIR" validate -no-color
}

check_test() {
  tf_init
  terraform -chdir="$TF_DIR" test -no-color
}

check_checkov() {
  [[ -x "$UV" ]] || { echo "deploy-check: uv not found (make install fetches it)" >&2; exit 2; }
  "$UV" sync --frozen --quiet --project "$HERE"
  "$HERE/.venv/bin/checkov" -d "$TF_DIR" --framework terraform --quiet --compact --skip-download
}

check_actionlint() {
  local actionlint="$ROOT/.venv/bin/actionlint"
  [[ -x "$actionlint" ]] || { echo "deploy-check: $actionlint missing (make install)" >&2; exit 2; }
  (cd "$ROOT" && "$actionlint" -no-color .github/workflows/*.yml)
  echo "actionlint: $(ls "$ROOT"/.github/workflows/*.yml | wc -l) workflow files valid"
}

case "${1:-all}" in
  fmt | validate | test | checkov | actionlint) "check_$1" ;;
  all) for step in fmt validate test checkov actionlint; do echo "== $step"; "check_$step"; done ;;
  *) echo "usage: $0 [fmt|validate|test|checkov|actionlint|all]" >&2; exit 2 ;;
esac
