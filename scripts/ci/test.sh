#!/usr/bin/env bash
# The test suite on a bare Debian machine or container, as root: installs the Python that
# scripts/setup.sh builds its virtualenv with, then runs scripts/test.sh with any arguments.
source "$(dirname "$0")/lib.sh"

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
fi
exec scripts/test.sh "$@"
