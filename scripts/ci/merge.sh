#!/usr/bin/env bash
# Move the shards and manifests of a run into the data directory, never overwriting anything.
#   scripts/ci/merge.sh [IN_DIR]     (default: incoming)
# A shard whose name is taken by a different file is kept under a new name; one that is already
# there unchanged is skipped. Prints each shard added.
source "$(dirname "$0")/lib.sh"

in=${1:-incoming}
data=$(config_value data-dir)
mkdir -p "$data/observations"

shopt -s nullglob
for shard in "$in"/observations/*.csv; do
  target="$data/observations/$(basename "$shard")"
  if [ -e "$target" ]; then
    cmp -s "$shard" "$target" && continue
    n=1
    while [ -e "${target%.csv}.$n.csv" ]; do n=$((n + 1)); done
    target="${target%.csv}.$n.csv"
  fi
  cp -n "$shard" "$target"
  echo "$target"
done

if [ -d "$in/manifests" ]; then
  mkdir -p "$data/manifests"
  # Content-addressed: a manifest that is there already is the same manifest.
  cp -rn "$in/manifests/." "$data/manifests/"
fi
