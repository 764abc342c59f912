#!/usr/bin/env bash
# The main job on the offline default, from nothing: install what is needed, bring up the lab
# (two real registries in the roles of Docker Hub and GHCR, four real Docker engines), probe and
# pull every tag, record the observations under lab-data/, stop the lab, build the site in site/.
# Runs as root (the engines need it). Extra arguments go to `collect` (e.g. --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python -m matrix collect --lab --config pull-matrix.lab.toml "$@"
.venv/bin/python -m matrix site --data lab-data --out site
cat <<'DONE'

The site is built in site/. To open it:
  .venv/bin/python -m matrix site --data lab-data --serve   # then browse http://127.0.0.1:8000/
DONE
