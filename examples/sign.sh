#!/usr/bin/env bash
# Sign one message with SECRET_KEY_BASE and post it to a bridge's ingest, with bash, openssl and
# curl only.
#
#   SECRET_KEY_BASE=... examples/sign.sh [--cacert FILE] [--user USER[:PASSWORD]] \
#       [--timeout SECONDS] [--topic TOPIC] INSTANCE TAG PAYLOAD_JSON [TOPIC]
#   SECRET_KEY_BASE=... examples/sign.sh ex_esdb_metrics performance_metric \
#       '{"metric_name": "queue_depth", "value": 12, "unit": "messages", "component": "orders"}'
#
# A health or lifecycle message is not side-effect free: the node it names joins the cluster, and
# one that then goes silent is declared down with a critical alert (docs/http-api.md#ingest).
# The bridge is EXESDB_URL, else the address in EXESDB_HTTP_ADDR (default 0.0.0.0:9570; a
# wildcard host is asked on loopback; over https when EXESDB_WEB_CONFIG_FILE names a file with a
# tls_server_config section, trusting that file's own certificate alone, the first of its
# cert_file or of its inline cert, whatever host it names: its public key pinned, so curl checks
# not its name; its dates are checked here, one expired or not yet valid refused, exit 1, as
# sign.py refuses it), as for `exesdb-bridge publish`. The bridge needs
# EXESDB_INGEST=true. Against a bridge at EXESDB_URL serving TLS with a CA of your own, or one
# asking for basic auth, as with `exesdb-bridge publish`: --cacert FILE trusts that CA (PEM;
# through EXESDB_HTTP_ADDR too, instead of the file's certificate), --user
# USER:PASSWORD sends basic auth (--user USER: curl asks for the password; a user:password@ in
# EXESDB_URL is taken too); --timeout SECONDS (default 10, as sign.py's) bounds the request.
# Prints the HTTP status and the bridge's answer; exits 0 on 202, 1 on another answer or none, 2
# on bad usage (as sign.py), a PAYLOAD_JSON that is no JSON included (the bridge's 400, named by
# the payload's own character), and so is a --cacert FILE missing or holding no PEM certificate,
# before anything is sent; -h or --help prints the usage and an example, exit 0.
# The envelope and the signature: docs/messages.md#envelope, docs/http-api.md#ingest.
# openssl takes the key as an argument, so other users of the host can read it in the process
# list while openssl runs: on a shared host sign with examples/sign.py or exesdb-bridge publish.
set -euo pipefail

# The certificate the bridge serves, as the web config file $1 names it, as exesdb-bridge
# publish reads it: the first one of its tls_server_config's cert_file (relative to the file's
# folder), else of its inline cert (a YAML block scalar, cert: |), printed as PEM; nothing
# printed when it names neither (written in YAML's flow style, say). Exit 2 naming a cert_file
# that cannot be read.
own_certificate() {
    local line section=false inline=false indent=0 value
    while IFS= read -r line || [[ -n $line ]]; do
        line=${line%$'\r'}
        if $inline; then
            # The block: every line more indented than its key, or blank.
            value=${line#"${line%%[![:space:]]*}"}
            if [[ -z $value ]] || ((${#line} - ${#value} > indent)); then
                printf '%s\n' "$value"
                continue
            fi
            return 0
        fi
        if [[ $line =~ ^tls_server_config:[[:space:]]*(#.*)?$ ]]; then
            section=true
        elif [[ $line =~ ^[^[:space:]#] ]]; then
            section=false
        elif $section && [[ $line =~ ^([[:space:]]+)cert_file:[[:space:]]*(.*)$ ]]; then
            value=${BASH_REMATCH[2]%%[[:space:]]#*}
            value=${value%"${value##*[![:space:]]}"}
            case $value in \"*\" | \'*\') value=${value:1:${#value}-2} ;; esac
            [[ $value == /* ]] || value="$(dirname "$1")/$value"
            if [[ ! -f $value || ! -r $value ]]; then
                echo "$0: EXESDB_WEB_CONFIG_FILE: tls_server_config.cert_file $value: not a file" \
                    "this user can read; --cacert FILE trusts a CA of your own instead" >&2
                exit 2
            fi
            cat -- "$value"
            return 0
        elif $section && [[ $line =~ ^([[:space:]]+)cert:[[:space:]]*[\|\>][-+0-9]*[[:space:]]*(#.*)?$ ]]; then
            inline=true indent=${#BASH_REMATCH[1]}
        fi
    done <"$1"
}

# $1 as the text of a JSON string: the backslash, the quote and each C0 control character
# escaped (RFC 8259, section 7), so that INSTANCE, TAG, TOPIC and EXESDB_NODE are sent as given,
# as sign.py's json.dumps sends them, and judged by the bridge: none of them can break the
# envelope or add a field to it.
json_text() {
    local text=$1 code hex char escaped
    text=${text//'\'/'\\'}
    text=${text//'"'/'\"'}
    if [[ $text == *[[:cntrl:]]* ]]; then
        for ((code = 1; code < 32; code++)); do
            printf -v hex '%02x' "$code"
            printf -v char "\\x$hex"
            printf -v escaped '\\u00%s' "$hex"
            text=${text//"$char"/"$escaped"}
        done
    fi
    printf '%s' "$text"
}

# Bad usage, exit 2: what is wrong ($1, when known) on a line of its own, as sign.py's argparse
# says it, then the usage.
usage() {
    [[ $# -gt 0 ]] && echo "$0: $1" >&2
    echo "usage: SECRET_KEY_BASE=... $0 [--cacert FILE] [--user USER[:PASSWORD]]" \
        "[--timeout SECONDS] [--topic TOPIC] INSTANCE TAG PAYLOAD_JSON [TOPIC]" >&2
    exit 2
}
# $1, an option not taken, as a refusal names it: without a value given in it, which may be a
# password (curl's -uops:PASSWORD, --usr=ops:PASSWORD, --userops:PASSWORD): a short option by its
# letter (-u…), a long one cut where no option's name goes on (--usr=…, --user…, --usrops…).
option_named() {
    local name known rest
    if [[ $1 != --* ]]; then
        name=${1:0:2}
        ((${#1} <= 2)) || name+="…"
    else
        [[ $1 =~ ^--[A-Za-z-]* ]]
        name=${BASH_REMATCH[0]}
        for known in --cacert --user --timeout --topic; do
            [[ $name == "$known"?* ]] && name=$known
        done
        rest=${1:${#name}}
        if [[ $rest == =* ]]; then
            name+="=…"
        elif [[ -n $rest ]]; then
            name+="…"
        fi
    fi
    printf '%s' "$name"
}
# -h or --help: the usage and an example on stdout, exit 0, as sign.py answers it: a reader
# asking for help is not told off with a usage error.
help() {
    echo "usage: SECRET_KEY_BASE=... $0 [--cacert FILE] [--user USER[:PASSWORD]]" \
        "[--timeout SECONDS] [--topic TOPIC] INSTANCE TAG PAYLOAD_JSON [TOPIC]"
    echo "e.g.:  SECRET_KEY_BASE=... $0 ex_esdb_metrics performance_metric" \
        "'{\"metric_name\": \"queue_depth\", \"value\": 12, \"unit\": \"messages\"," \
        "\"component\": \"orders\"}'"
    echo "Signs one message with SECRET_KEY_BASE and posts it to the bridge's ingest; the" \
        "comment at the top of $0 says the rest."
    exit 0
}
curl_options=()
timeout=10
# Every option before INSTANCE, which never begins with a dash.
while [[ $# -gt 0 && $1 == -* ]]; do
    case $1 in
        -h | --help) help ;;
        --cacert | --user | --timeout | --topic) [[ $# -ge 2 ]] || usage "$1 needs a value" ;;&
        --cacert | --user) curl_options+=("$1" "$2") ;;&
        --cacert)
            # Refused before anything is sent, as sign.py and publish refuse it: curl, over
            # https, would fail with no answer (and over http never read it).
            if [[ ! -e $2 ]]; then
                problem="No such file or directory"
            elif [[ ! -f $2 || ! -r $2 ]]; then
                problem="not a file this user can read"
            elif ! grep -qs -e '-----BEGIN CERTIFICATE-----' -e '-----BEGIN TRUSTED CERTIFICATE-----' "$2"; then
                problem="holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            fi
            if [[ -n ${problem:-} ]]; then
                echo "$0: --cacert $2: $problem" >&2
                exit 2
            fi
            cacert=$2
            shift 2 ;;
        --user) shift 2 ;;
        --timeout)
            # A positive number of seconds, as curl's --max-time takes it.
            [[ $2 =~ ^[0-9]*\.?[0-9]+$ && ! $2 =~ ^[0.]+$ ]] \
                || usage "--timeout: not a positive number of seconds: '$2'"
            timeout=$2
            shift 2 ;;
        --topic)
            # As sign.py and publish take it; TOPIC after PAYLOAD_JSON too.
            topic_option=$2
            shift 2 ;;
        # Named without a value given in it with =: --user=ops:PASSWORD holds a password.
        --cacert=* | --user=* | --timeout=* | --topic=*)
            usage "${1%%=*}=…: give its value after a space, ${1%%=*} VALUE" ;;
        # Its value glued on, as curl's -u takes one (--userops:PASSWORD): named without it.
        --cacert?* | --user?* | --timeout?* | --topic?*)
            name=$(option_named "$1")
            usage "$name: give its value after a space, ${name%…} VALUE" ;;
        *) usage "$(option_named "$1"): not an option of $0" ;;
    esac
done
# Too few or too many arguments are named as sign.py's argparse names them, and an option after
# PAYLOAD_JSON by its name alone (a value given in it with = may be a password), not taken for
# TOPIC (--topic -x gives a topic beginning with a dash).
if [[ $# -lt 3 ]]; then
    required=(INSTANCE TAG PAYLOAD_JSON)
    missing=$(printf ', %s' "${required[@]:$#}")
    usage "the following arguments are required: ${missing:2}"
fi
for argument in "${@:4}"; do
    [[ $argument == -* ]] && usage "$(option_named "$argument"): options go before INSTANCE"
done
[[ $# -le 4 ]] || usage "$# arguments after the options, at most 4: INSTANCE TAG PAYLOAD_JSON [TOPIC]"
[[ -n ${topic_option:-} && $# -eq 4 ]] && usage "TOPIC given twice: --topic, or after PAYLOAD_JSON"
# A variable empty or of blanks only (docker compose's ${X:-}, a stray space in an env file) is
# unset, as the bridge and exesdb-bridge publish read it.
for name in SECRET_KEY_BASE EXESDB_URL EXESDB_HTTP_ADDR EXESDB_WEB_CONFIG_FILE EXESDB_NODE; do
    if [[ ${!name:-} =~ ^[[:space:]]*$ ]]; then
        unset "$name"
    fi
done
if [[ -z ${SECRET_KEY_BASE:-} ]]; then
    echo "$0: set SECRET_KEY_BASE to the bridge's key" >&2
    exit 2
fi
instance=$1 tag=$2 payload=$3 topic=${4:-${topic_option:-$2}}

if [[ -n "${EXESDB_URL:-}" ]]; then
    # As exesdb-bridge publish reads it (curl would guess a scheme, or name only a host).
    url_form='^https?://([^/@]*@)?(\[[0-9a-f:.]+\]|[^][/@:?#]+)(:[0-9]*)?([/?#].*)?$'
    if [[ ! ${EXESDB_URL,,} =~ $url_form ]]; then
        # Named as the bridge's commands name it: its origin only, the password redacted.
        problem="not a URL; allowed: an http:// or https:// URL with a host"
        if [[ $EXESDB_URL =~ ^([^/:]*:)//([^/?#]*)(.*)$ ]]; then
            shown="${BASH_REMATCH[1]}//" authority=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]}
            if [[ $authority == *@* ]]; then
                user=${authority%@*}
                [[ $user == *:* ]] && user="${user%%:*}:<redacted>"
                shown+="$user@${authority##*@}"
            else
                shown+=$authority
            fi
            [[ -n $rest ]] && shown+="/…"
            problem="'$shown' is not an http:// or https:// URL with a host"
        fi
        echo "$0: EXESDB_URL: $problem, e.g. http://127.0.0.1:9570" >&2
        exit 2
    fi
    if [[ $EXESDB_URL == *[?#]* ]]; then
        # The path added would be part of them: the message posted to the page at the URL.
        echo "$0: EXESDB_URL: has a query or fragment (? or #), after which the path added" \
            "(/v1/messages) would land; allowed: the bridge's URL without them" >&2
        exit 2
    fi
    bridge=${EXESDB_URL%/}
else
    addr=${EXESDB_HTTP_ADDR:-0.0.0.0:9570}
    host=${addr%:*} port=${addr##*:}
    # As the bridge reads it: a port alone, a URL or port 0 (the bridge picks one) is no address
    # to send a signed message to.
    if [[ $addr != *:* || $addr == */* || ! $port =~ ^[0-9]{1,5}$ ]] \
        || ((10#$port < 1 || 10#$port > 65535)); then
        echo "$0: EXESDB_HTTP_ADDR: must be host:port as the bridge listens on it, e.g." \
            "127.0.0.1:9570 (got '$addr'); a bridge's URL goes in EXESDB_URL" >&2
        exit 2
    fi
    if [[ $host == *:* && $host != \[* ]]; then
        # '::1:9570', as the bridge refuses it: the URL built would be http://::1:9570. Brackets
        # are suggested only to what reads as an IPv6 address (hex, dots and two colons or more,
        # a %scope after): '::9570' or 'a:b:9570' has no host the bridge takes in them.
        if [[ ${host%%\%*} =~ ^[0-9A-Fa-f:.]+$ && $host == *:*:* ]]; then
            echo "$0: EXESDB_HTTP_ADDR: must be host:port, an IPv6 host in brackets; did you" \
                "mean '[$host]:$port'?" >&2
        else
            echo "$0: EXESDB_HTTP_ADDR: must be host:port, the host an IP address ([::1] for" \
                "IPv6) or a host name, e.g. 0.0.0.0:9570" >&2
        fi
        exit 2
    fi
    case $host in "" | 0.0.0.0) host=127.0.0.1 ;; "[::]") host="[::1]" ;; esac
    scheme=http
    # A regular file only: grep would wait on a FIFO for a writer.
    if [[ -f ${EXESDB_WEB_CONFIG_FILE:-} ]] && grep -qs '^tls_server_config:' "$EXESDB_WEB_CONFIG_FILE"; then
        scheme=https
    fi
    bridge="$scheme://$host:$port"
    if [[ $scheme == https && -z ${cacert:-} ]]; then
        # The bridge's own address, whose certificate is the web config's: trusted alone, as
        # publish trusts it, whatever host it names. curl checks no name then, nor dates: its
        # public key is pinned (that of every certificate made with the bridge's key).
        certificate=$(own_certificate "$EXESDB_WEB_CONFIG_FILE")
        if [[ -n $certificate ]]; then
            if ! key_hash=$(openssl x509 -pubkey -noout <<<"$certificate" 2>/dev/null \
                | openssl pkey -pubin -outform der 2>/dev/null \
                | openssl dgst -sha256 -binary | openssl base64 -A); then
                echo "$0: EXESDB_WEB_CONFIG_FILE: tls_server_config's certificate holds no PEM" \
                    "certificate openssl can read" >&2
                exit 2
            fi
            # Its dates, which --insecure leaves unchecked: verified as sign.py's TLS verifies
            # them, the certificate its own trust anchor (OpenSSL's codes 9 and 10 at depth 0).
            verified=$(openssl verify -partial_chain -CAfile <(printf '%s\n' "$certificate") \
                2>&1 <<<"$certificate") || true
            case $verified in
                *"error 10 at 0 depth"*)
                    dated="has expired ($(openssl x509 -noout -enddate <<<"$certificate"))" ;;
                *"error 9 at 0 depth"*)
                    dated="is not yet valid ($(openssl x509 -noout -startdate <<<"$certificate"))" ;;
            esac
            if [[ -n ${dated:-} ]]; then
                echo "$0: the bridge's certificate (EXESDB_WEB_CONFIG_FILE's) $dated, so nothing" \
                    "was sent: renew it, or set this machine's clock right; trusting another CA" \
                    "would not help" >&2
                exit 1
            fi
            curl_options+=(--insecure --pinnedpubkey "sha256//$key_hash")
        fi
    fi
fi

id=$(openssl rand -hex 16)
ts=$(date -u +%Y-%m-%dT%H:%M:%SZ)
node=${EXESDB_NODE:-$(hostname)}
body=$(printf '{"v":1,"id":"%s","instance":"%s","topic":"%s","tag":"%s","node":"%s","ts":"%s","payload":%s}' \
    "$id" "$(json_text "$instance")" "$(json_text "$topic")" "$(json_text "$tag")" \
    "$(json_text "$node")" "$ts" "$payload")
# Where the payload starts in the body: a body the bridge finds no JSON from there on is the
# payload's fault, told by its own position (the bridge's counts from the envelope's start).
payload_at=$((${#body} - ${#payload} - 1))
t=$(date +%s)
# HMAC-SHA256 over "<t>." + body with the key's UTF-8 bytes, as lowercase hex.
signature=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$SECRET_KEY_BASE" -r | cut -d' ' -f1)

answer=$(mktemp)
trap 'rm -f "$answer"' EXIT
# At most --timeout, as sign.py waits: a port that takes the request and never answers ends it.
# No answer is exit 1, as sign.py's, not curl's own status; curl has said why (no password).
if ! status=$(curl -sS ${curl_options[@]+"${curl_options[@]}"} -o "$answer" -w '%{http_code}' \
    --max-time "$timeout" -X POST "$bridge/v1/messages" \
    -H "Content-Type: application/json" \
    -H "X-ExESDB-Signature: t=$t,v1=$signature" \
    --data-binary "$body"); then
    # Named as sign.py names it: without a user:password@ of EXESDB_URL's (curl sent them).
    [[ $bridge =~ ^([^:/]+://)[^/]*@(.*)$ ]] && bridge=${BASH_REMATCH[1]}${BASH_REMATCH[2]}
    echo "$0: no answer from the bridge at $bridge, so nothing was sent" \
        "(EXESDB_URL or EXESDB_HTTP_ADDR says where it is)" >&2
    exit 1
fi
not_json='"detail": "not JSON: ([^"(:]*)[^"(]*\(char ([0-9]+)\)'
if [[ $status == 400 && $(<"$answer") =~ $not_json ]] && ((BASH_REMATCH[2] >= payload_at)); then
    # As sign.py refuses it before sending: bad usage, told once, by the payload's position
    # (the bridge's answer counts from the envelope's start: a second number for one mistake).
    echo "$0: PAYLOAD_JSON is no JSON (${BASH_REMATCH[1]} at its character" \
        "$((BASH_REMATCH[2] - payload_at + 1))): give one JSON object," \
        "as '{\"status\": \"healthy\"}'" >&2
    exit 2
fi
echo "$status $(cat "$answer")"
[[ $status == 202 ]]
