#!/usr/bin/env bash
# Prepare this machine for commune-watch: the Debian packages that are missing
# (Python, the MQTT broker, the PDF engine's libraries, and for the tests
# VictoriaMetrics, promtool and amtool), then a virtualenv in .venv with the project installed. Safe to run again.
# Usage: scripts/setup.sh [dev|demo]
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-dev}"

# Debian package -> a file it installs (how we tell whether it is there).
declare -A packages=(
  [python3]="(checked on PATH)"
  [python3-venv]="(checked by importing venv and ensurepip)"
  [ca-certificates]=/etc/ssl/certs/ca-certificates.crt
  [mosquitto]=/usr/sbin/mosquitto
  # The procurement report's PDF (WeasyPrint) and a font with Vietnamese diacritics.
  [libpango-1.0-0]="/usr/lib/$(uname -m)-linux-gnu/libpango-1.0.so.0"
  [libpangoft2-1.0-0]="/usr/lib/$(uname -m)-linux-gnu/libpangoft2-1.0.so.0"
  [libharfbuzz-subset0]="/usr/lib/$(uname -m)-linux-gnu/libharfbuzz-subset.so.0"
  [fonts-dejavu-core]=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
)
if [ "$mode" = dev ]; then
  packages+=(
    [mosquitto-clients]=/usr/bin/mosquitto_pub
    [victoria-metrics]=/usr/bin/victoria-metrics
    # promtool and amtool check deploy/prometheus and deploy/alertmanager. On a
    # systemd machine Debian also starts (and enables) the prometheus and
    # prometheus-alertmanager services; the tests do not need them running.
    [prometheus]=/usr/bin/promtool
    [prometheus-alertmanager]=/usr/bin/amtool
    # The OpenWrt agent is tested with dash and BusyBox sh; the SNMP poller against snmpd.
    [dash]=/bin/dash
    [busybox]=/bin/busybox
    [snmpd]=/usr/sbin/snmpd
  )
fi

missing=()
for pkg in "${!packages[@]}"; do
  case "$pkg" in
    python3) command -v python3 >/dev/null || missing+=(python3) ;;
    python3-venv) command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null \
                    || missing+=(python3-venv) ;;
    *) [ -e "${packages[$pkg]}" ] || missing+=("$pkg") ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  # The tests start their own brokers and daemons on free ports: keep Debian from
  # starting system services (snmpd on :161, mosquitto on :1883) where no init
  # system would anyway (containers), using Debian's policy-rc.d switch.
  policy=/usr/sbin/policy-rc.d
  added_policy=""
  if [ ! -e /run/systemd/system ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee "$policy" >/dev/null
    "${sudo_cmd[@]}" chmod +x "$policy"
    added_policy=1
  fi
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  [ -z "$added_policy" ] || "${sudo_cmd[@]}" rm -f "$policy"
fi

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "setup: Python >= 3.11 is needed (Debian 12, Ubuntu 24.04 have it); found $(python3 -V)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating virtualenv .venv"
  python3 -m venv .venv
fi
extra=dev
[ "$mode" = demo ] && extra=collector
# Install again only when pyproject.toml changed since the last install.
stamp=.venv/.cwatch-installed-$extra
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing commune-watch[$extra] into .venv (a minute on a first run)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extra]" 2>&1 \
    | grep -v -e "BuildBackendWarning" -e "precedence" -e '^\s*!!' -e '^\s*\*\*\*' -e '^\s*$' \
      -e "Please be careful" -e "name as your package" -e "WheelFile" -e "is ignored: it is neither" || true
  touch "$stamp"
fi
