#!/usr/bin/env bash
# Plan the engine pulls of this run from the history and this run's probe shards.
#   scripts/ci/plan.sh [IN_DIR] [PLAN_FILE]     (defaults: incoming, plan.json)
source "$(dirname "$0")/lib.sh"

in=${1:-incoming}
plan=${2:-plan.json}
args=(--data "$(config_value data-dir)" --out "$plan")
if compgen -G "$in/observations/*.csv" >/dev/null; then
  args+=(--probe "$in/observations")
fi
matrix plan "${args[@]}"
