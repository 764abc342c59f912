#!/usr/bin/env bash
# Build the static site from the data directory.
#   scripts/ci/site.sh [OUT_DIR]     (default: site)
source "$(dirname "$0")/lib.sh"

matrix site --data "$(config_value data-dir)" --out "${1:-site}"
