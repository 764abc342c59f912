#!/usr/bin/env bash
# Probe every configured image on every registry it is published to.
#   scripts/ci/probe.sh [OUT_DIR]     (default: incoming)
# Writes one shard per image to OUT_DIR/observations/ and copies the manifest store to
# OUT_DIR/manifests/, ready for scripts/ci/merge.sh. Registry credentials, if any, come from the
# environment variables the config names (PULL_MATRIX_USERNAME_<HOST>, PULL_MATRIX_PASSWORD_<HOST>).
source "$(dirname "$0")/lib.sh"

out=${1:-incoming}
data=$(config_value data-dir)
mkdir -p "$out/observations"
mapfile -t insecure < <(insecure_args)

written=0
n=0
while read -r image; do
  n=$((n + 1))
  mapfile -t refs < <(config_value refs "$image")
  args=("${refs[@]}" "${insecure[@]}" --data "$data")
  for platform in $(config_value platforms "$image"); do args+=(--platform "$platform"); done
  tags=$(config_value tags "$image" | paste -sd, -)
  [ -z "$tags" ] || args+=(--tags "$tags")
  shard="$out/observations/probe-$(run_tag)-$n.csv"
  # A probe that recorded failures still wrote its shard; only a missing shard is fatal.
  matrix probe "${args[@]}" --out "$shard" || echo "probe: $image finished with errors" >&2
  if [ -s "$shard" ]; then
    written=$((written + 1))
  else
    echo "probe: no observations for $image" >&2
  fi
done < <(config_value images)

if [ -d "$data/manifests" ]; then
  cp -r "$data/manifests" "$out/"
fi
# One image that could not be probed must not cost the others their run.
((written > 0))
