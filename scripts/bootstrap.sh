#!/usr/bin/env bash
# Install what is missing on a fresh machine and make sure PostgreSQL and RabbitMQ run.
# Idempotent: a second run only checks. Used by `make run`, `make test`, `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ffmpeg/ffprobe from Debian (the transcoder and yt-dlp use them).
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    say "installing ffmpeg from Debian"
    apt_install ffmpeg
fi
# nginx: the X-Accel-Redirect offload is tested through it, and it is the streaming baseline.
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    say "installing nginx-light from Debian"
    apt_install nginx-light
fi
# Debian's Chromium: the web page's browser tests drive it through Playwright (its own
# browser downloads are never used).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    say "installing chromium and chromium-driver from Debian"
    apt_install chromium chromium-driver
fi
# promtool (Debian's prometheus package) checks and unit-tests the alert rules; the
# Prometheus server itself scrapes a running stack in the end-to-end tests.
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    say "installing prometheus (and promtool) from Debian"
    apt_install prometheus
fi
# wrk is only needed by the benchmarks.
if [ "${WITH_BENCH_TOOLS:-0}" = 1 ]; then
    command -v wrk >/dev/null || { say "installing wrk (load generator)"; apt_install wrk; }
fi

# uv manages the Python workspace from the single lock file.
if ! command -v uv >/dev/null; then
    say "installing uv"
    python3 -m pip install --quiet --disable-pip-version-check uv
fi
UV="uv"; command -v uv >/dev/null || UV="python3 -m uv"
$UV sync --frozen --quiet

# PostgreSQL
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if ! command -v pg_ctlcluster >/dev/null; then
        say "installing PostgreSQL"
        apt_install postgresql
        # A cluster this script created (a fresh CI container): the services and the tests
        # connect as postgres over loopback without a password, as on a development machine.
        hba="$(ls -d /etc/postgresql/*/main | sort -V | tail -1)/pg_hba.conf"
        printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' \
            | cat - "$hba" | as_root tee "$hba.new" >/dev/null
        as_root mv "$hba.new" "$hba"
    fi
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start" >&2; exit 1; }
fi

# RabbitMQ
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! rabbit_up; then
    if ! command -v rabbitmq-server >/dev/null; then
        say "installing RabbitMQ"
        apt_install rabbitmq-server
    fi
    say "starting RabbitMQ"
    rabbitmq-server -detached 2>/dev/null || true
    rabbitmqctl await_startup >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do rabbit_up && break; sleep 1; done
    rabbit_up || { echo "RabbitMQ did not start" >&2; exit 1; }
fi

# RabbitMQ's own Prometheus endpoint (:15692): queue depth, unacknowledged messages and
# consumers per queue, which the alert rules and the dashboard read.
if ! rabbitmq-plugins is_enabled rabbitmq_prometheus >/dev/null 2>&1; then
    say "enabling RabbitMQ's rabbitmq_prometheus plugin"
    rabbitmq-plugins enable rabbitmq_prometheus >/dev/null
fi
