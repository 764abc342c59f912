#!/usr/bin/env bash
# Open, update or close GitHub issues for the regressions of this run's pulls.
#   GH_TOKEN=… scripts/ci/alert.sh [IN_DIR] [--dry-run]     (default: incoming)
# IN_DIR holds this run's shards (under observations/); the data directory holds the verdicts
# before it. `gh` reads its token from GH_TOKEN itself.
source "$(dirname "$0")/lib.sh"

in=${1:-incoming}
shift || true
args=(--data "$(config_value data-dir)")
for shard in "$in"/observations/*.csv; do
  [ -e "$shard" ] && args+=(--latest "$shard")
done
if ((${#args[@]} == 2)); then
  echo "alert: no observations of this run in $in"
  exit 0
fi
[ -z "${GITHUB_REPOSITORY:-}" ] || args+=(--repo "$GITHUB_REPOSITORY")
matrix alert "${args[@]}" "$@"
