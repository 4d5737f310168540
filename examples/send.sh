#!/bin/sh
# Signs a webhook body and sends it: POSIX sh, openssl and curl only.
#
#   examples/send.sh '{"message_id":"m1",...}'   the string, byte for byte
#   examples/send.sh @body.json                  the file, byte for byte (newlines kept)
#   examples/send.sh @-                          standard input
#
# The key is $SECRET, else WEBHOOK_SECRET from the env file `make run` reads (.env, else
# .env.example); the target is $URL (default http://localhost:8000/webhook). Set them on the
# command line (SECRET=... examples/send.sh ...), not with export. Prints the answer's body;
# exits 0 on a 2xx, 1 otherwise. The body is never put through echo, so backslashes survive.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 BODY | @FILE | @-" >&2; exit 2; }
root=$(dirname "$0")/..
env_file=${ENV_FILE:-$root/.env}
[ -f "$env_file" ] || env_file=$root/.env.example
secret=${SECRET:-$(sed -n 's/^WEBHOOK_SECRET=//p' "$env_file" 2>/dev/null)}
[ -n "$secret" ] || { echo "no secret: set SECRET=... or WEBHOOK_SECRET in $env_file" >&2; exit 2; }
url=${URL:-http://localhost:8000/webhook}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case $1 in
  @-) cat > "$tmp/body" ;;
  @*) cp -- "${1#@}" "$tmp/body" ;;
  *) printf '%s' "$1" > "$tmp/body" ;;
esac
# openssl prints "HMAC-SHA2-256(stdin)= hex" (3.x), "(stdin)= hex" (1.1) or "hex" (LibreSSL).
sig=$(openssl dgst -sha256 -hmac "$secret" < "$tmp/body" | awk '{print $NF}')
code=$(curl -sS -o "$tmp/answer" -w '%{http_code}' -X POST "$url" \
  -H 'Content-Type: application/json' -H "X-Signature: $sig" --data-binary "@$tmp/body")
cat "$tmp/answer"; echo
case $code in 2??) exit 0 ;; *) echo "HTTP $code" >&2; exit 1 ;; esac
