#!/usr/bin/env bash
# The test suite: installs what it needs, then runs pytest. Fixtures start and stop the real
# registries and engines the integration tests use. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest -ra "$@"
