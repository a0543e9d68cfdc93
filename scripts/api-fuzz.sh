#!/usr/bin/env bash
# Property-based test of the HTTP API against its own OpenAPI document (schemathesis,
# from PyPI): no 5xx response and no response that breaks the schema, as a supervisor
# (who may call most endpoints) on a small demo database. Used by .ci/run, with a fixed
# seed so CI replays the same cases; set API_FUZZ_SEED to explore others.
#   scripts/api-fuzz.sh [path/to/lifecert] [--postgres URL]
set -euo pipefail
bin=${1:-target/debug/lifecert}
shift || true
pg_url=""
if [ "${1:-}" = "--postgres" ]; then pg_url=$2; fi

work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    if [ -n "$pg_url" ]; then psql -q "$pg_url" -c "DROP DATABASE IF EXISTS lifecert_fuzz_$$ WITH (FORCE)" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${SCHEMATHESIS_VENV:-}" ]; then ln -s "$SCHEMATHESIS_VENV" "$work/venv"; fi
if [ ! -x "$work/venv/bin/schemathesis" ]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install -q "schemathesis>=4,<5"
fi

"$bin" demo --dir "$work/demo" --recipients 300 >/dev/null
if [ -n "$pg_url" ]; then
    psql -q "$pg_url" -c "CREATE DATABASE lifecert_fuzz_$$" >/dev/null
    export LIFECERT_DATABASE_URL="${pg_url%/*}/lifecert_fuzz_$$"
    export LIFECERT_MASTER_KEY=$(cat "$work/demo/lifecert.key")
    "$bin" import recipients "$work/demo/demo-recipients.csv" >/dev/null
else
    export LIFECERT_DATABASE_URL="sqlite://$work/demo/lifecert.db"
fi
"$bin" user add --username fuzz --role supervisor --json | tail -n 1 > "$work/user.json"

# The OpenCRVS webhook answers 503 without a shared secret; with one, unsigned fuzz
# deliveries must get 401.
export LIFECERT_OPENCRVS_SECRET="api-fuzz-opencrvs-shared-secret"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --addr "127.0.0.1:$port" 2>"$work/serve.log" &
server=$!
for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done

token=$(python3 - "$work/user.json" "$port" <<'PY'
import base64, hashlib, hmac, json, re, struct, sys, time, urllib.request
user = json.load(open(sys.argv[1]))
secret = re.search("secret=([A-Z2-7]+)", user["totp_uri"]).group(1)
key = base64.b32decode(secret + "=" * (-len(secret) % 8))
mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
o = mac[-1] & 15
code = "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)
body = json.dumps({"username": user["username"], "password": user["password"], "totp": code}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[2]}/api/v1/auth/login", body, {"content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["token"])
PY
)

# Logout would end the session the rest of the run uses.
"$work/venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --exclude-path /api/v1/auth/logout \
    --max-examples 25 \
    --seed "${API_FUZZ_SEED:-2026}" \
    --request-timeout 10 \
    --suppress-health-check all
echo "api-fuzz: no server errors and no schema violations${pg_url:+ (PostgreSQL)}"
