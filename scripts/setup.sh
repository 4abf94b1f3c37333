#!/usr/bin/env bash
# Prepare this machine for commune-watch: Debian packages the tests and the demo
# need (only those missing), then a virtualenv in .venv with the project installed.
# Safe to run again. Usage: scripts/setup.sh [dev|demo]
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-dev}"

# Debian package -> a file it installs (how we tell whether it is there).
declare -A packages=(
  [mosquitto]=/usr/sbin/mosquitto
  [mosquitto-clients]=/usr/bin/mosquitto_pub
)
if [ "$mode" = dev ]; then
  packages+=(
    [victoria-metrics]=/usr/bin/victoria-metrics
  )
fi
need_python_pkgs=()
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null \
  || { echo "setup: python3 >= 3.11 is needed (Debian 12 / Ubuntu 24.04 have it)" >&2; exit 1; }
python3 -c 'import venv, ensurepip' 2>/dev/null || need_python_pkgs+=(python3-venv)

missing=("${need_python_pkgs[@]}")
for pkg in "${!packages[@]}"; do
  [ -e "${packages[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating virtualenv .venv"
  python3 -m venv .venv
fi
extra=dev
[ "$mode" = demo ] && extra=collector
# Reinstall only when pyproject.toml changed since the last install.
stamp=.venv/.cwatch-installed-$extra
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing commune-watch[$extra] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extra]"
  touch "$stamp"
fi
