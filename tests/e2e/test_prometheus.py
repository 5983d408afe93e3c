"""O2: a real Prometheus with the shipped scrape configuration and alert rules, against a
running stack: every target is up, the dashboard's metrics exist, and the no-consumer
alert fires when a worker is stopped with work queued.

The configuration is the shipped one with two changes a test needs: the DNS discovery of
compose becomes loopback targets (same job names, ports and paths), and the alert's
``for`` shrinks from minutes to seconds (the expression is the shipped one).
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]

from tests.support.media_server import MediaServer
from tests.support.stack import Stack, free_port, running_stack
from tests.support.telegram import FakeBotApi
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "prsnl.json"
SERVICES = {
    "ingest": "PRSNL_INGEST_METRICS_PORT",
    "downloader": "PRSNL_DOWNLOADER_METRICS_PORT",
    "transcoder": "PRSNL_TRANSCODER_METRICS_PORT",
    "storage-janitor": "PRSNL_JANITOR_METRICS_PORT",
    "telegram-gateway": "PRSNL_TELEGRAM_METRICS_PORT",
}
TOKEN = "7000000002:AAE-prsnl-test-token-measured-0123456"
FAST_ALERT = "PrsnlQueueWithoutConsumer"
# Series the frameworks create only on an unhandled exception, which a healthy run has none
# of; their names are checked against the frameworks' own definitions in
# tests/unit/test_deploy_files.py (test_dashboard_uses_framework_metric_names).
ON_UNHANDLED_ERROR_ONLY = {
    "faststream_received_processed_messages_exceptions_total",
    "litestar_requests_error_total",
}


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {service: free_port() for service in SERVICES}


@pytest.fixture(scope="module")
def measured_stack(
    tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int]
) -> Iterator[Stack]:
    with (
        running_stack(
            tmp_path_factory.mktemp("measured"),
            downloaders=1,
            PRSNL_JANITOR_SWEEP_INTERVAL_SECONDS="2",
            PRSNL_MAX_ATTEMPTS="2",
            PRSNL_RETRY_DELAYS="0.5",
            **{variable: str(ports[service]) for service, variable in SERVICES.items()},
        ) as stack,
        FakeBotApi(TOKEN) as bot_api,
    ):
        stack.start(
            "telegram-gateway",
            extra_env={
                "PRSNL_TELEGRAM_BOT_TOKEN": TOKEN,
                "PRSNL_TELEGRAM_API_URL": bot_api.url,
                "PRSNL_TELEGRAM_GATEWAY_URL": stack.base_url,
                "PRSNL_TELEGRAM_POLL_TIMEOUT": "1",
            },
        )
        yield stack


def _config(ports: dict[str, int], rules: Path) -> dict[str, Any]:
    shipped = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config = copy.deepcopy(shipped)
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if "dns_sd_configs" in job:
            job.pop("dns_sd_configs")
            job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[name]}"]}]
        elif name == "rabbitmq":
            job["static_configs"] = [{"targets": ["127.0.0.1:15692"]}]
        elif name == "prometheus":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{ports['prometheus']}"]}]
    return config


def _fast_rules(rules: Path) -> None:
    shipped = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in shipped["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == FAST_ALERT:
                rule["for"] = "3s"
    rules.write_text(yaml.safe_dump(shipped))


@pytest.fixture(scope="module")
def prometheus(
    measured_stack: Stack, ports: dict[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("prometheus")
    rules = folder / "alerts.yml"
    _fast_rules(rules)
    ports = {**ports, "prometheus": free_port()}
    (folder / "prometheus.yml").write_text(yaml.safe_dump(_config(ports, rules)))
    address = f"127.0.0.1:{ports['prometheus']}"
    with (folder / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={address}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://{address}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _api(base: str, path: str, **params: str) -> Any:
    response = httpx.get(f"{base}/api/v1/{path}", params=params, timeout=10)
    response.raise_for_status()
    return response.json()["data"]


async def test_every_target_of_the_shipped_configuration_is_up(prometheus: str) -> None:
    def all_up() -> bool:
        try:
            targets = _api(prometheus, "targets")["activeTargets"]
        except httpx.HTTPError:
            return False
        return len(targets) == len(SERVICES) + 2 and all(t["health"] == "up" for t in targets)

    await eventually(all_up, within=60, what="every scrape target up")


def _dashboard_metrics() -> set[str]:
    names: set[str] = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r'"[^"]*"', '""', target["expr"])
            names.update(re.findall(r"\b(?:prsnl|faststream|litestar|rabbitmq)_[a-z0-9_]+", expr))
    return names


async def test_the_dashboard_queries_metrics_that_exist(
    prometheus: str, measured_stack: Stack, media: MediaServer
) -> None:
    api = measured_stack.client(measured_stack.create_key("measured"))
    item = api.capture(media.url("/files/small.mp4"), max_height=240).json()
    assert api.wait_for(item["id"])["status"] == "ready"
    # A source that keeps answering 503: one retry scheduled, then given up (dead-lettered).
    flaky = api.capture(media.url("/status/503")).json()
    failed = api.wait_for(flaky["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "source_unavailable"
    api.get("/api/v1/items/00000000-0000-0000-0000-000000000000")  # a 404 for the error panels
    assert api.delete(f"/api/v1/items/{item['id']}").status_code == 204
    wanted = _dashboard_metrics() - ON_UNHANDLED_ERROR_ONLY

    def missing() -> set[str]:
        present = set(_api(prometheus, "label/__name__/values"))
        return wanted - present

    try:
        await eventually(lambda: not missing(), within=60, what="every dashboard metric scraped")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: never scraped {sorted(missing())}") from None


async def test_the_no_consumer_alert_fires_when_a_worker_stops_with_work_queued(
    prometheus: str, measured_stack: Stack, media: MediaServer
) -> None:
    queue = f"{measured_stack.namespace}.downloader.url-captured"

    def firing() -> bool:
        alerts = _api(prometheus, "alerts")["alerts"]
        return any(
            a["labels"].get("alertname") == FAST_ALERT
            and a["labels"].get("queue") == queue
            and a["state"] == "firing"
            for a in alerts
        )

    await eventually(
        lambda: bool(_api(prometheus, "rules")["groups"]), within=30, what="rules loaded"
    )
    assert not firing()
    measured_stack.kill("downloader")
    api = measured_stack.client(measured_stack.create_key("queued"))
    item = api.capture(media.url("/files/small.mp4"), max_height=144).json()
    await eventually(firing, within=60, what=f"{FAST_ALERT} firing for {queue}")
    measured_stack.start("downloader")
    assert api.wait_for(item["id"])["status"] == "ready"
    await eventually(lambda: not firing(), within=60, what="the alert resolved")
