#!/usr/bin/env bash
# Start PostgreSQL and Redis on loopback for the tests (sourced by .ci/run; safe to re-run).
# Exports LLMROUTER_TEST_PG_URL and LLMROUTER_TEST_REDIS_URL.
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ "${#need[@]}" -gt 0 ]; then
    echo "== apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
PG_PORT="${LLMROUTER_PG_PORT:-55432}"
PG_DIR="${LLMROUTER_PG_DIR:-/tmp/llmrouter-ci-pg}"
# PostgreSQL refuses to run as root: as root, run it as the postgres user.
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else bash -c "$1"; fi; }
if ! "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
    if [ ! -f "$PG_DIR/PG_VERSION" ]; then
        mkdir -p "$PG_DIR"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR"
        as_pg "$PG_BIN/initdb -D $PG_DIR -U postgres --auth=trust" >/dev/null
    fi
    # fsync off: a throwaway test cluster; durability is not what these tests measure.
    as_pg "$PG_BIN/pg_ctl -D $PG_DIR -l $PG_DIR/log -w -o '-c listen_addresses=127.0.0.1 \
        -p $PG_PORT -c max_connections=200 -c fsync=off -k /tmp' start" >/dev/null
fi
"$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -tc \
    "SELECT 1 FROM pg_database WHERE datname = 'llmrouter_test'" | grep -q 1 \
    || "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres llmrouter_test

REDIS_PORT="${LLMROUTER_REDIS_PORT:-56379}"
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
        --appendonly no --logfile /tmp/llmrouter-ci-redis.log >/dev/null
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

export LLMROUTER_TEST_PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/llmrouter_test"
export LLMROUTER_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
echo "== services: $LLMROUTER_TEST_PG_URL, $LLMROUTER_TEST_REDIS_URL"
