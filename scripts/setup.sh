#!/usr/bin/env bash
# Install everything pull-matrix needs on a fresh Debian machine: system packages and a virtualenv.
# Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker-registry skopeo chromium ca-certificates iproute2 util-linux shellcheck)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a registry on port 5000 as a service where systemd runs; the lab
# starts its own registries, so a packaged one must not hold the port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -e "$stamp" ]; then
  log=$(mktemp)
  if ! { .venv/bin/pip install -q --disable-pip-version-check -U pip \
      && .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: pip install failed" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$stamp"
fi
