#!/usr/bin/env bash
# Pull the planned tags with one engine version.
#   scripts/ci/pull.sh ENGINE_VERSION [IMAGE]
# Environment:
#   PULL_MATRIX_PLAN    the plan from scripts/ci/plan.sh (default: plan.json)
#   PULL_MATRIX_OUT     where the shards go, under observations/ (default: incoming)
#   PULL_MATRIX_ENGINE  endpoint of a running docker:<version>-dind engine, e.g.
#                       tcp://127.0.0.1:2375; when unset, one is started with the local docker
#                       and removed afterwards.
source "$(dirname "$0")/lib.sh"

version=${1:?usage: pull.sh ENGINE_VERSION [IMAGE]}
image=${2:-}
plan=${PULL_MATRIX_PLAN:-plan.json}
out=${PULL_MATRIX_OUT:-incoming}

list=(plan --from "$plan" --engine "$version" --list)
[ -z "$image" ] || list+=(--image "$image")
mapfile -t planned < <(matrix "${list[@]}")
if ((${#planned[@]} == 0)); then
  echo "pull: nothing planned for engine $version${image:+ and $image}"
  exit 0
fi

endpoint=${PULL_MATRIX_ENGINE:-}
if [ -z "$endpoint" ]; then
  container="pull-matrix-ci-dind-$version-$$"
  docker run -d --rm --privileged --name "$container" -e DOCKER_TLS_CERTDIR= \
    -p 127.0.0.1::2375 "docker:$version-dind" >/dev/null
  trap 'docker rm -f "$container" >/dev/null 2>&1 || true' EXIT
  endpoint="tcp://$(docker port "$container" 2375/tcp | head -n 1)"
fi

alive() { "$PY" -c 'import sys; from matrix.engines.model import is_alive; sys.exit(not is_alive(sys.argv[1]))' "$1"; }
for _ in $(seq 60); do
  alive "$endpoint" && break
  sleep 2
done

mapfile -t insecure < <(insecure_args)
mkdir -p "$out/observations"
failed=0
for platform in $(printf '%s\n' "${planned[@]}" | cut -d' ' -f1 | sort -u); do
  mapfile -t refs < <(printf '%s\n' "${planned[@]}" | awk -v p="$platform" '$1 == p { print $2 }')
  shard="$out/observations/pull-$version-${platform//\//-}-$(run_tag).csv"
  # A dead engine or a failed pull is recorded in the shard; only a missing shard is fatal.
  matrix pull "${refs[@]}" --engine "$endpoint" --platform "$platform" "${insecure[@]}" \
    --out "$shard" || echo "pull: engine $version recorded errors on $platform" >&2
  [ -s "$shard" ] || { echo "pull: no observations from engine $version" >&2; failed=1; }
done
exit "$failed"
