#!/usr/bin/env bash
# Install pull-matrix into .venv for the CI jobs that only run its commands (scripts/setup.sh
# installs everything, including the system packages the tests need).
source "$(dirname "$0")/lib.sh"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e .
