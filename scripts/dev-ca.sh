#!/bin/sh
# A test certificate authority and a broker certificate signed by it, for
# development and the tests (for production, use your province's CA or a public one).
# Usage: scripts/dev-ca.sh OUT_DIR [BROKER_NAME ...]
#   OUT_DIR gets ca.crt (give it to agents as [broker] ca_file), ca.key,
#   broker.crt and broker.key (mosquitto's certfile and keyfile).
#   BROKER_NAME: host names or IP addresses agents use to reach the broker;
#   localhost and 127.0.0.1 are always included.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 OUT_DIR [BROKER_NAME ...]" >&2; exit 2; }
out=$1; shift
command -v openssl >/dev/null || { echo "$0: openssl not found (Debian: apt-get install openssl)" >&2; exit 1; }
mkdir -p "$out"
san="DNS:localhost,IP:127.0.0.1"
for name in "$@"; do
  case "$name" in
    *[!0-9.]*) san="$san,DNS:$name" ;;
    *) san="$san,IP:$name" ;;
  esac
done
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=commune-watch test CA" \
  -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=${1:-localhost}" \
  -keyout "$out/broker.key" -out "$out/broker.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > "$out/broker.ext"
openssl x509 -req -in "$out/broker.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
  -CAcreateserial -days 825 -extfile "$out/broker.ext" -out "$out/broker.crt" 2>/dev/null
rm -f "$out/broker.csr" "$out/broker.ext" "$out/ca.srl"
chmod 644 "$out/ca.crt" "$out/broker.crt"
echo "dev-ca: $out/ca.crt (for agents), $out/broker.crt and $out/broker.key (for mosquitto); names: $san"
