#!/usr/bin/env bash
# Start every service as its own process against the local RabbitMQ and PostgreSQL.
# Ctrl-C (or SIGTERM) stops them all gracefully. Logs go to var/log/<service>.log.
#   DOWNLOADERS=2 TRANSCODERS=1 make run   # more replicas of a stage
set -euo pipefail
cd "$(dirname "$0")/.."

UV="uv"; command -v uv >/dev/null || UV="python3 -m uv"
export PRSNL_MEDIA_ROOT="${PRSNL_MEDIA_ROOT:-$PWD/var/media}"
export PRSNL_DATABASE_URL="${PRSNL_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/prsnl}"
export PRSNL_RABBITMQ_URL="${PRSNL_RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/}"
# Local installs may capture links from make demo's media server, on one port of this machine:
# not the database, the broker or the metrics ports. Set it empty for production.
export PRSNL_SSRF_ALLOWLIST="${PRSNL_SSRF_ALLOWLIST-127.0.0.1:${DEMO_MEDIA_PORT:-8765}}"
export PRSNL_INGEST_HOST="${PRSNL_INGEST_HOST:-127.0.0.1}"
export PRSNL_INGEST_PORT="${PRSNL_INGEST_PORT:-8000}"
DOWNLOADERS="${DOWNLOADERS:-1}"
TRANSCODERS="${TRANSCODERS:-1}"
mkdir -p var/log "$PRSNL_MEDIA_ROOT"

if [ ! -s var/api-key ]; then
    $UV run prsnl-ingest create-key --owner local --label "make run" > var/api-key.new 2>/dev/null
    mv var/api-key.new var/api-key
fi
$UV run prsnl-ingest migrate >/dev/null

pids=()
start() { # name logfile command...
    local name=$1 log=$2; shift 2
    "$@" >>"var/log/$log.log" 2>&1 &
    pids+=($!)
    printf '  %-22s pid %-7s log var/log/%s.log\n' "$name" "$!" "$log"
}
stop() {
    trap - INT TERM EXIT
    echo; echo "stopping..."
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    exit "${1:-0}"
}
trap stop INT TERM EXIT

echo "starting PRSNL Media:"
start ingest ingest $UV run prsnl-ingest serve
for i in $(seq 1 "$DOWNLOADERS"); do
    port=$((9101 + i)); [ "$i" -gt 1 ] && port=0
    PRSNL_DOWNLOADER_METRICS_PORT=$port start "downloader-$i" "downloader-$i" $UV run prsnl-downloader
done
for i in $(seq 1 "$TRANSCODERS"); do
    port=9103; [ "$i" -gt 1 ] && port=0
    PRSNL_TRANSCODER_METRICS_PORT=$port start "transcoder-$i" "transcoder-$i" $UV run prsnl-transcoder
done
start storage-janitor storage-janitor $UV run prsnl-storage-janitor
if [ -n "${PRSNL_TELEGRAM_BOT_TOKEN:-}" ]; then
    export PRSNL_TELEGRAM_GATEWAY_URL="${PRSNL_TELEGRAM_GATEWAY_URL:-http://$PRSNL_INGEST_HOST:$PRSNL_INGEST_PORT}"
    start telegram-gateway telegram-gateway $UV run prsnl-telegram-gateway
    TELEGRAM_LINE="  telegram  the bot is running (allowed users: PRSNL_TELEGRAM_USERS)"
else
    printf '  %-22s not started: set PRSNL_TELEGRAM_BOT_TOKEN (and PRSNL_TELEGRAM_USERS="<your telegram id>=<API key>") to run the bot\n' telegram-gateway
    TELEGRAM_LINE="  telegram  not started; enable it with
            PRSNL_TELEGRAM_BOT_TOKEN=<token from @BotFather> PRSNL_TELEGRAM_USERS=\"<your telegram id>=\$(cat var/api-key)\" make run"
fi

API="http://$PRSNL_INGEST_HOST:$PRSNL_INGEST_PORT"
for _ in $(seq 1 60); do
    curl -fsS "$API/readyz" >/dev/null 2>&1 && break
    sleep 0.5
done
curl -fsS "$API/readyz" >/dev/null 2>&1 || { echo "ingest did not become ready; see var/log/ingest.log" >&2; exit 1; }

KEY=$(cat var/api-key)
cat <<INFO

PRSNL Media is running.
  web page  $API/   (sign in with the key below)
  API       $API/api/v1   (OpenAPI: $API/api/v1/schema)
  API key   $KEY   (also in var/api-key)
  media     $PRSNL_MEDIA_ROOT
$TELEGRAM_LINE

Try:
  curl -H "Authorization: Bearer $KEY" -d '{"url": "https://youtu.be/..."}' $API/api/v1/captures
  make demo     # in another terminal: sample items from generated clips

Ctrl-C stops everything.
INFO
wait -n "${pids[@]}" || true
echo "a service exited; see var/log/ — stopping the others" >&2
stop 1
