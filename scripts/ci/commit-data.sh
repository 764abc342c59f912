#!/usr/bin/env bash
# Commit the data directory and push it to the branch of the run.
#   GITHUB_TOKEN=… scripts/ci/commit-data.sh
# Without GITHUB_TOKEN the commit stays local. The token reaches git only through environment
# variables (never a command line, a remote URL or the log).
source "$(dirname "$0")/lib.sh"

data=$(config_value data-dir)
git add -- "$data"
if git diff --cached --quiet; then
  echo "commit-data: no new data"
  exit 0
fi
git -c user.name="pull-matrix" \
  -c user.email="41898282+github-actions[bot]@users.noreply.github.com" \
  commit -q -m "Data: observations of run ${GITHUB_RUN_ID:-local}" -- "$data"

if [ -z "${GITHUB_TOKEN:-}" ]; then
  echo "commit-data: committed locally; set GITHUB_TOKEN to push"
  exit 0
fi
basic=$(printf 'x-access-token:%s' "$GITHUB_TOKEN" | base64 -w0)
export GIT_CONFIG_COUNT=1
export GIT_CONFIG_KEY_0="http.${GITHUB_SERVER_URL:-https://github.com}/.extraheader"
export GIT_CONFIG_VALUE_0="AUTHORIZATION: basic $basic"
branch=${GITHUB_REF_NAME:-main}
for attempt in 1 2 3; do
  if git push -q origin "HEAD:$branch"; then
    exit 0
  fi
  echo "commit-data: push $attempt refused; rebasing on $branch" >&2
  git pull -q --rebase origin "$branch"
done
exit 1
