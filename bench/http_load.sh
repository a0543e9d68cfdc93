#!/usr/bin/env bash
# HTTP load benchmark for lifecert's JSON API, on SQLite and (optionally) PostgreSQL,
# with pgbench on the same PostgreSQL as the yardstick.
#
#   bash bench/http_load.sh [--duration 20] [--connections 32] [--recipients 100000]
#                           [--postgres postgres://postgres:postgres@127.0.0.1/postgres]
#
# The PostgreSQL URL may also come from LIFECERT_BENCH_POSTGRES_URL; without one only
# SQLite is measured. It prints figures and the machine they were measured on; it asserts
# nothing about timing. All traffic stays on 127.0.0.1. Everything it creates (temporary
# folders, the servers it starts, the databases lifecert_http_bench_PID and
# lifecert_pgbench_PID) is removed on exit.
#
# Workloads, per backend, each run by wrk (2 threads, --connections, --duration):
#   read:  GET /api/v1/recipients/{id}, id uniformly random in 1..recipients
#   write: POST /api/v1/certifications, a counter "pass" dated today for a random pensioner
# Both as one certifier whose region is the whole country, logged in with a Bearer token.
# Informational targets (printed, never asserted): API reads >= 20% of pgbench -S tps,
# API certification writes >= 25% of pgbench TPC-B tps, p99 < 50 ms.
#
# Needs: cargo, python3 (standard library only), wrk (installed with
# apt-get when missing), and for PostgreSQL psql and pgbench (PostgreSQL 15 client tools).

set -euo pipefail

DURATION=20
CONNECTIONS=32
RECIPIENTS=100000
PG_URL="${LIFECERT_BENCH_POSTGRES_URL:-}"

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION="$2"; shift 2 ;;
        --duration=*) DURATION="${1#*=}"; shift ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --connections=*) CONNECTIONS="${1#*=}"; shift ;;
        --recipients) RECIPIENTS="$2"; shift 2 ;;
        --recipients=*) RECIPIENTS="${1#*=}"; shift ;;
        --postgres) PG_URL="$2"; shift 2 ;;
        --postgres=*) PG_URL="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in DURATION CONNECTIONS RECIPIENTS; do
    if ! [[ "${!v}" =~ ^[1-9][0-9]*$ ]]; then
        echo "error: --$(echo "$v" | tr 'A-Z' 'a-z') must be a positive whole number" >&2
        exit 2
    fi
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELPER=(python3 "$ROOT/bench/http_load_helper.py")
LUA="$ROOT/bench/http_load.lua"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/lifecert"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
# A fixed master key for the PostgreSQL database (base64 of 32 bytes); SQLite uses the
# key file `lifecert demo` writes beside its database.
BENCH_MASTER_KEY="bGlmZWNlcnQtaHR0cC1iZW5jaC1maXhlZC1rZXktMzI="
# The settings come from the flags below only.
unset LIFECERT_DATABASE_URL LIFECERT_CONFIG LIFECERT_MASTER_KEY LIFECERT_MASTER_KEY_FILE \
    LIFECERT_FIELD_CIPHER LIFECERT_ADDR LIFECERT_LOG
export PGCONNECT_TIMEOUT=10

# ---------------------------------------------------------------- cleanup on exit
TMP=""
SERVER_PIDS=()
DROP_DBS=()
ADMIN_URL=""

stop_server() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid db
    trap - EXIT INT TERM
    for pid in "${SERVER_PIDS[@]}"; do stop_server "$pid"; done
    for db in "${DROP_DBS[@]}"; do
        timeout 60 psql "$ADMIN_URL" -qAt -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 \
            || echo "warning: could not drop database $db" >&2
    done
    if [ -n "$TMP" ]; then rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------- tools
SUDO=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=(sudo); fi
if ! command -v wrk >/dev/null; then
    echo "wrk is missing: installing it with apt-get" >&2
    if ! apt-cache policy wrk 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        timeout 600 "${SUDO[@]}" apt-get update
    fi
    timeout 600 "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk
fi
PSQL="" PGBENCH=""
if [ -n "$PG_URL" ]; then
    PSQL="$(command -v psql || true)"
    PGBENCH="$(command -v pgbench || true)"
    [ -n "$PSQL" ] || PSQL=/usr/lib/postgresql/15/bin/psql
    [ -n "$PGBENCH" ] || PGBENCH=/usr/lib/postgresql/15/bin/pgbench
    for t in "$PSQL" "$PGBENCH"; do
        [ -x "$t" ] || { echo "error: $t not found: install PostgreSQL 15's client tools (postgresql-15 or postgresql-client-15)" >&2; exit 1; }
    done
    psql() { "$PSQL" "$@"; }
    ADMIN_URL="$PG_URL"
fi

# ---------------------------------------------------------------- build
section "build"
(cd "$ROOT" && cargo build --release -p lifecert)

section "machine"
cpu_model="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//')"
mem_kib="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)"
echo "host:        $(uname -n), $(uname -sr) $(uname -m)"
echo "cpus:        $(nproc) x ${cpu_model:-unknown}"
echo "memory:      $((mem_kib / 1024)) MiB"
# rev-parse only: it takes no lock on the repository (git status could).
COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "commit:      $COMMIT"
echo "lifecert:    $("$BIN" --version)"
echo "wrk:         $(wrk --version 2>&1 | head -1 | sed 's/ Copyright.*//')"
if [ -n "$PG_URL" ]; then
    echo "postgresql:  server $(psql "$PG_URL" -qAt -c 'SHOW server_version'), $("$PGBENCH" --version)"
    echo "             $(psql "$PG_URL" -qAt -c "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers','synchronous_commit','fsync','max_connections','wal_level')")"
else
    echo "postgresql:  not measured (give --postgres URL or LIFECERT_BENCH_POSTGRES_URL)"
fi
echo "settings:    duration ${DURATION}s, ${CONNECTIONS} connections, 2 wrk threads, ${RECIPIENTS} pensioners"
echo "note:        wrk, lifecert and PostgreSQL share these $(nproc) CPUs"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/lifecert-http-bench.XXXXXX")"
TODAY="$(date +%F)"
CLK_TCK="$(getconf CLK_TCK)"

# ---------------------------------------------------------------- helpers
# start_server NAME PID_VAR BASE_VAR [env...] -- lifecert args...: serve in the background
start_server() {
    local name="$1" port base pid
    shift
    port="$("${HELPER[@]}" free-port)"
    base="http://127.0.0.1:$port"
    env "$@" "$BIN" serve --addr "127.0.0.1:$port" >"$TMP/$name-server.log" 2>&1 &
    pid=$!
    SERVER_PIDS+=("$pid")
    if ! "${HELPER[@]}" wait-ready "$base" 60; then
        echo "error: the $name server did not become ready; its log:" >&2
        cat "$TMP/$name-server.log" >&2
        exit 1
    fi
    SERVER_PID="$pid"
    SERVER_BASE="$base"
}

postgres_pids() {
    ps -C postgres -o pid= 2>/dev/null | tr -s ' \n' ' ' || true
}

# run_wrk BACKEND MODE BASE TOKEN SERVER_PID: prints wrk's output and a summary line
declare -A RPS P50 P99 NON2XX
run_wrk() {
    local backend="$1" mode="$2" base="$3" token="$4" server_pid="$5"
    local out="$TMP/wrk-$backend-$mode.txt" s0 s1 p0 p1 t0 t1 pg_pids figures
    pg_pids="$(postgres_pids)"
    load0="$(cut -d' ' -f1-3 /proc/loadavg)"
    s0="$("${HELPER[@]}" cpu-ticks "$server_pid")"
    # shellcheck disable=SC2086
    p0="$("${HELPER[@]}" cpu-ticks $pg_pids)"
    t0="$(date +%s.%N)"
    LIFECERT_BENCH_TOKEN="$token" timeout $((DURATION + 60)) \
        wrk -t 2 -c "$CONNECTIONS" -d "${DURATION}s" --timeout 10s --latency \
        -s "$LUA" "$base" -- "$mode" "$RECIPIENTS" "$TODAY" >"$out" 2>&1 || {
        echo "error: wrk failed ($backend $mode):" >&2
        cat "$out" >&2
        echo "the server's log:" >&2
        tail -50 "$TMP/$backend-server.log" >&2
        exit 1
    }
    t1="$(date +%s.%N)"
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "error: the $backend server (pid $server_pid) exited during the $mode run; wrk said:" >&2
        cat "$out" >&2
        echo "the server's log:" >&2
        tail -50 "$TMP/$backend-server.log" >&2
        exit 1
    fi
    s1="$("${HELPER[@]}" cpu-ticks "$server_pid")"
    # shellcheck disable=SC2086
    p1="$("${HELPER[@]}" cpu-ticks $pg_pids)"
    section "$backend $mode (wrk -t 2 -c $CONNECTIONS -d ${DURATION}s --latency)"
    sed 's/^/  | /' "$out"
    figures="$("${HELPER[@]}" parse-wrk "$out")"
    eval "$figures" # rps= p50_ms= p99_ms= requests= non2xx= socket_errors=
    RPS[$backend-$mode]="$rps"
    P50[$backend-$mode]="$p50_ms"
    P99[$backend-$mode]="$p99_ms"
    NON2XX[$backend-$mode]="$non2xx"
    echo "  => requests/s $rps, p50 ${p50_ms} ms, p99 ${p99_ms} ms, non-2xx $non2xx of $requests, socket errors $socket_errors"
    LOAD0="$load0" awk -v s="$((s1 - s0))" -v p="$((p1 - p0))" -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" -v pg="$backend" 'BEGIN {
        wall = t1 - t0
        printf "  => CPU during the run: lifecert server %.2f cores", s / hz / wall
        if (pg == "postgres") printf ", PostgreSQL backends %.2f cores", p / hz / wall
        printf " (of %d); load average before the run %s\n", ENVIRON["NPROC"], ENVIRON["LOAD0"]
    }'
}
export NPROC="$(nproc)"

make_user() { # make_user NAME OUT_FILE [env...] -- : a certifier for the whole country
    local name="$1" file="$2"
    shift 2
    env "$@" "$BIN" --json user add --username "$name" --role certifier --region "" >"$file"
    chmod 600 "$file"
}

# ---------------------------------------------------------------- SQLite
section "sqlite: setting up ${RECIPIENTS} demo pensioners"
SQLITE_DIR="$TMP/sqlite"
SQLITE_URL="sqlite://$SQLITE_DIR/lifecert.db"
start=$(date +%s)
timeout 3600 "$BIN" --json demo --dir "$SQLITE_DIR" --recipients "$RECIPIENTS" >"$TMP/demo.json" 2>"$TMP/demo.err" || {
    cat "$TMP/demo.err" "$TMP/demo.json" >&2; exit 1; }
echo "demo: $(tail -1 "$TMP/demo.json" | sed "s#$TMP#\$TMP#g") ($(( $(date +%s) - start )) s)"
make_user bench_sqlite "$TMP/user-sqlite.json" LIFECERT_DATABASE_URL="$SQLITE_URL"
start_server sqlite LIFECERT_DATABASE_URL="$SQLITE_URL"
SQLITE_PID="$SERVER_PID"
SQLITE_TOKEN="$("${HELPER[@]}" login "$SERVER_BASE" "$TMP/user-sqlite.json")"
echo "serving on $SERVER_BASE (pid $SQLITE_PID), logged in as bench_sqlite"
run_wrk sqlite read "$SERVER_BASE" "$SQLITE_TOKEN" "$SQLITE_PID"
run_wrk sqlite write "$SERVER_BASE" "$SQLITE_TOKEN" "$SQLITE_PID"
stop_server "$SQLITE_PID"

# ---------------------------------------------------------------- PostgreSQL
if [ -n "$PG_URL" ]; then
    APP_DB="lifecert_http_bench_$$"
    PGB_DB="lifecert_pgbench_$$"
    APP_URL="$("${HELPER[@]}" pg-url "$PG_URL" "$APP_DB")"
    PGB_URL="$("${HELPER[@]}" pg-url "$PG_URL" "$PGB_DB")"
    PG_ENV=(LIFECERT_DATABASE_URL="$APP_URL" LIFECERT_MASTER_KEY="$BENCH_MASTER_KEY")

    section "postgres: setting up ${RECIPIENTS} demo pensioners in database $APP_DB"
    DROP_DBS+=("$APP_DB")
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $APP_DB" >/dev/null
    start=$(date +%s)
    # The roll `lifecert demo` wrote for SQLite: the same pensioners, the same ids.
    env "${PG_ENV[@]}" timeout 3600 "$BIN" --json import recipients "$SQLITE_DIR/demo-recipients.csv" \
        >"$TMP/pg-import.json" 2>"$TMP/pg-import.err" || { cat "$TMP/pg-import.err" "$TMP/pg-import.json" >&2; exit 1; }
    echo "import: $(tail -1 "$TMP/pg-import.json" | cut -c1-200) ($(( $(date +%s) - start )) s)"
    env "${PG_ENV[@]}" timeout 600 "$BIN" --json cycle run >"$TMP/pg-cycle.json"
    echo "cycle:  $(tail -1 "$TMP/pg-cycle.json")"
    psql "$APP_URL" -qAt -v ON_ERROR_STOP=1 -c "VACUUM ANALYZE" >/dev/null
    make_user bench_postgres "$TMP/user-postgres.json" "${PG_ENV[@]}"
    start_server postgres "${PG_ENV[@]}"
    PG_PID="$SERVER_PID"
    PG_TOKEN="$("${HELPER[@]}" login "$SERVER_BASE" "$TMP/user-postgres.json")"
    echo "serving on $SERVER_BASE (pid $PG_PID), logged in as bench_postgres"
    run_wrk postgres read "$SERVER_BASE" "$PG_TOKEN" "$PG_PID"
    run_wrk postgres write "$SERVER_BASE" "$PG_TOKEN" "$PG_PID"
    stop_server "$PG_PID"

    section "pgbench on the same PostgreSQL (database $PGB_DB, scale 10)"
    DROP_DBS+=("$PGB_DB")
    psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PGB_DB" >/dev/null
    timeout 600 "$PGBENCH" -i -s 10 -q "$PGB_URL" >"$TMP/pgbench-init.txt" 2>&1 || {
        cat "$TMP/pgbench-init.txt" >&2; exit 1; }
    pgbench_run() { # pgbench_run LABEL [args...]: prints the output, sets TPS
        local label="$1" out="$TMP/pgbench-$1.txt"
        shift
        timeout $((DURATION + 120)) "$PGBENCH" "$@" -c "$CONNECTIONS" -j 2 -T "$DURATION" "$PGB_URL" >"$out" 2>&1 || {
            cat "$out" >&2; exit 1; }
        echo "pgbench${*:+ $*} -c $CONNECTIONS -j 2 -T $DURATION:"
        grep -E '^(transaction type|number of (transactions actually processed|failed)|latency average|tps)' "$out" | sed 's/^/  | /'
        TPS="$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out" | head -1)"
        [ -n "$TPS" ] || TPS="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out" | head -1)"
    }
    pgbench_run select -S
    TPS_S="$TPS"
    pgbench_run tpcb
    TPS_B="$TPS"
fi

# ---------------------------------------------------------------- summary
section "summary (on $(nproc) x ${cpu_model:-unknown CPU}, $((mem_kib / 1024)) MiB, commit $COMMIT, ${DURATION}s runs, $CONNECTIONS connections)"
printf '  %-10s %-6s %12s %10s %10s %9s  %s\n' backend load "requests/s" "p50 ms" "p99 ms" "non-2xx" "p99 < 50 ms"
for key in sqlite-read sqlite-write postgres-read postgres-write; do
    [ -n "${RPS[$key]:-}" ] || continue
    under="$(awk -v p="${P99[$key]}" 'BEGIN { print (p + 0 < 50 ? "yes" : "no") }')"
    printf '  %-10s %-6s %12s %10s %10s %9s  %s\n' "${key%-*}" "${key#*-}" "${RPS[$key]}" "${P50[$key]}" "${P99[$key]}" "${NON2XX[$key]}" "$under"
done
if [ -n "$PG_URL" ]; then
    printf '  %-28s %12.1f tps\n' "pgbench -S (select-only):" "$TPS_S" "pgbench TPC-B-like:" "$TPS_B"
    echo "  ratios (informational; targets: reads >= 20% of pgbench -S, writes >= 25% of TPC-B, p99 < 50 ms):"
    for b in postgres sqlite; do
        printf '    %-50s %s\n' "$b API reads / pgbench -S:" "$("${HELPER[@]}" ratio "${RPS[$b-read]}" "$TPS_S")"
        printf '    %-50s %s\n' "$b API certification writes / pgbench TPC-B:" "$("${HELPER[@]}" ratio "${RPS[$b-write]}" "$TPS_B")"
    done
    echo "    (postgres is the like-for-like comparison; sqlite is shown against the same yardstick)"
else
    echo "  p99 target (informational): < 50 ms"
fi
