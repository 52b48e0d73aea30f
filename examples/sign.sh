#!/usr/bin/env bash
# Sign one message with SECRET_KEY_BASE and post it to a bridge's ingest, with bash, openssl and
# curl only.
#
#   SECRET_KEY_BASE=... examples/sign.sh INSTANCE TAG PAYLOAD_JSON [TOPIC]
#   SECRET_KEY_BASE=... examples/sign.sh ex_esdb_health node_health_updated '{"status": "healthy"}'
#
# The bridge is EXESDB_URL, else the address in EXESDB_HTTP_ADDR (default 0.0.0.0:9570; a
# wildcard host is asked on loopback), as for `exesdb-bridge publish`. The bridge needs
# EXESDB_INGEST=true. Prints the HTTP status and the bridge's answer; exits 0 on 202.
# The envelope and the signature: docs/messages.md#envelope, docs/http-api.md#ingest.
set -euo pipefail

if [[ $# -lt 3 || $# -gt 4 ]]; then
    echo "usage: SECRET_KEY_BASE=... $0 INSTANCE TAG PAYLOAD_JSON [TOPIC]" >&2
    exit 2
fi
: "${SECRET_KEY_BASE:?set SECRET_KEY_BASE to the key of the bridge}"
instance=$1 tag=$2 payload=$3 topic=${4:-$2}

if [[ -n "${EXESDB_URL:-}" ]]; then
    bridge=${EXESDB_URL%/}
else
    addr=${EXESDB_HTTP_ADDR:-0.0.0.0:9570}
    host=${addr%:*} port=${addr##*:}
    case $host in "" | 0.0.0.0) host=127.0.0.1 ;; "[::]") host="[::1]" ;; esac
    bridge="http://$host:$port"
fi

id=$(openssl rand -hex 16)
ts=$(date -u +%Y-%m-%dT%H:%M:%SZ)
node=${EXESDB_NODE:-$(hostname)}
body=$(printf '{"v":1,"id":"%s","instance":"%s","topic":"%s","tag":"%s","node":"%s","ts":"%s","payload":%s}' \
    "$id" "$instance" "$topic" "$tag" "$node" "$ts" "$payload")
t=$(date +%s)
# HMAC-SHA256 over "<t>." + body with the key's UTF-8 bytes, as lowercase hex.
signature=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$SECRET_KEY_BASE" -r | cut -d' ' -f1)

answer=$(mktemp)
trap 'rm -f "$answer"' EXIT
status=$(curl -sS -o "$answer" -w '%{http_code}' -X POST "$bridge/v1/messages" \
    -H "Content-Type: application/json" \
    -H "X-ExESDB-Signature: t=$t,v1=$signature" \
    --data-binary "$body")
echo "$status $(cat "$answer")"
[[ $status == 202 ]]
