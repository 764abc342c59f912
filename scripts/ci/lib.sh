# shellcheck shell=bash
# Shared by the scripts beside it: the repository root as working directory, the Python to use,
# the config file and a few helpers. Sourced, not run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

PY=${PULL_MATRIX_PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PULL_MATRIX_CONFIG=${PULL_MATRIX_CONFIG:-$ROOT/pull-matrix.toml}

matrix() { "$PY" -m matrix "$@"; }

# config_value QUERY [IMAGE]: values from the config, one per line (see matrix/config.py).
config_value() { "$PY" -m matrix.config "$@"; }

# A name part that differs between runs and jobs, for shard files.
run_tag() {
  printf '%s-%s-%s' "$(date -u +%Y%m%dT%H%M%SZ)" "${GITHUB_RUN_ID:-local}" "${GITHUB_JOB:-$$}"
}

# --insecure HOST for every plain-HTTP registry of the config.
insecure_args() {
  local host
  for host in $(config_value insecure); do printf -- '--insecure\n%s\n' "$host"; done
}
