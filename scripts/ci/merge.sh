#!/usr/bin/env bash
# Move the shards and manifests of a run into the data directory, never overwriting anything.
#   scripts/ci/merge.sh [IN_DIR]     (default: incoming)
# A shard whose name is taken by a different file is kept under a new name; one that is already
# there unchanged is skipped. Prints each shard added.
source "$(dirname "$0")/lib.sh"

in=${1:-incoming}
data=$(config_value data-dir)
mkdir -p "$data/observations"

# merged_already SHARD BASE: true when BASE.csv or BASE.N.csv holds the same bytes as SHARD.
merged_already() {
  local existing
  for existing in "$2.csv" "$2".*.csv; do
    if [ -e "$existing" ] && cmp -s "$1" "$existing"; then return 0; fi
  done
  return 1
}

shopt -s nullglob
for shard in "$in"/observations/*.csv; do
  base="$data/observations/$(basename "$shard" .csv)"
  merged_already "$shard" "$base" && continue
  target="$base.csv"
  n=0
  while [ -e "$target" ]; do
    n=$((n + 1))
    target="$base.$n.csv"
  done
  cp -n "$shard" "$target"
  echo "$target"
done

if [ -d "$in/manifests" ]; then
  mkdir -p "$data/manifests"
  # Content-addressed: a manifest that is there already is the same manifest.
  cp -rn "$in/manifests/." "$data/manifests/"
fi
