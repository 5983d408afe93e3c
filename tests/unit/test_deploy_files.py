"""The deployment files agree with the code: images, compose, dashboard, Kubernetes, yt-dlp script.

Nothing here needs Docker or a cluster: the files are parsed and checked against the
workspace (package names, console scripts, settings, queue names, metric names).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML comes with litestar; no stubs locked
from pydantic_settings import BaseSettings

from prsnl_common.broker import SUBSCRIPTIONS, Topology
from prsnl_common.s3store import parse_store_url
from prsnl_common.settings import CommonSettings
from prsnl_downloader.settings import DownloaderSettings
from prsnl_ingest.settings import IngestSettings
from prsnl_janitor.settings import JanitorSettings
from prsnl_telegram.settings import TelegramSettings
from prsnl_transcoder.settings import TranscoderSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "prsnl.json"
K8S = DEPLOY / "k8s"
YTDLP = ROOT / "scripts" / "ytdlp.sh"
DOWNLOADER_PYPROJECT = ROOT / "services" / "downloader" / "pyproject.toml"

SERVICES = ("ingest", "downloader", "transcoder", "storage-janitor", "telegram-gateway")
# The bot is optional (a compose profile); its Kubernetes manifest is not written yet.
K8S_SERVICES = ("ingest", "downloader", "transcoder", "storage-janitor")
WORKERS = ("downloader", "transcoder", "storage-janitor")
NEEDS_FFMPEG = {"downloader", "transcoder"}
METRICS_PORTS = {
    "downloader": DownloaderSettings.model_fields["metrics_port"].default,
    "transcoder": TranscoderSettings.model_fields["metrics_port"].default,
    "storage-janitor": JanitorSettings.model_fields["metrics_port"].default,
    "telegram-gateway": TelegramSettings.model_fields["metrics_port"].default,
}
INGEST_PORT = IngestSettings.model_fields["port"].default
INGEST_METRICS_PORT = IngestSettings.model_fields["metrics_port"].default
# FastStream's graceful shutdown of in-flight messages (create_broker in broker.py).
BROKER_SOURCE = (ROOT / "libs" / "common" / "src" / "prsnl_common" / "broker.py").read_text()
FASTSTREAM_GRACE = float(re.search(r"graceful_timeout=([\d.]+)", BROKER_SOURCE)[1])  # type: ignore[index]


def _known_variables() -> set[str]:
    """Every environment variable a PRSNL service reads."""
    names: set[str] = {"MAX_VIDEO_SIZE_MB"}
    settings_classes: list[type[BaseSettings]] = [
        CommonSettings,
        IngestSettings,
        DownloaderSettings,
        TranscoderSettings,
        JanitorSettings,
        TelegramSettings,
    ]
    for settings in settings_classes:
        prefix = str(settings.model_config.get("env_prefix", ""))
        names.update(f"{prefix}{field}".upper() for field in settings.model_fields)
    return names


KNOWN_VARIABLES = _known_variables()


def _assert_known_variables(names: Iterator[str] | list[str], where: str) -> None:
    unknown = sorted(n for n in names if not n.startswith("OTEL_") and n not in KNOWN_VARIABLES)
    assert not unknown, f"{where} sets variables no service reads: {unknown}"


def _pyproject(service: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())


# --- Dockerfile ----------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def _stages() -> dict[str, dict[str, Any]]:
    """Stage name -> {"base": FROM image, "instructions": [...]}, in file order."""
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    for keyword, args in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, flags=re.IGNORECASE)
            assert match, args
            name = match[2] or f"stage{len(stages)}"
            current = stages[name] = {"base": match[1], "instructions": []}
        elif current is not None:
            current["instructions"].append((keyword, args))
    return stages


def _global_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for keyword, value in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = value.partition("=")
            args[name] = default
    return args


def _stage_chain(stages: dict[str, dict[str, Any]], name: str) -> list[str]:
    chain = [name]
    while stages[chain[-1]]["base"] in stages:
        chain.append(stages[chain[-1]]["base"])
    return chain


def _find(stages: dict[str, dict[str, Any]], chain: list[str], keyword: str) -> list[str]:
    return [args for stage in chain for kw, args in stages[stage]["instructions"] if kw == keyword]


def test_dockerfile_builds_every_service_from_the_slim_python_base() -> None:
    stages = _stages()
    python_image = _global_args()["PYTHON_IMAGE"]
    assert python_image == "python:3.11-slim-bookworm"
    assert stages["final"]["base"] == "service-${SERVICE}"
    assert list(stages)[-1] == "final", "the final image must be the default target"
    for name, stage in stages.items():
        if stage["base"] not in stages and name != "final":
            assert stage["base"] == "${PYTHON_IMAGE}", f"stage {name} starts from {stage['base']}"
    build = " ".join(args for _, args in stages["build"]["instructions"])
    assert 'pip install --no-cache-dir --disable-pip-version-check "uv==' in build
    assert 'uv sync --frozen --no-dev --package "prsnl-${SERVICE}"' in build
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in build
    for copied in ("pyproject.toml uv.lock", "libs/ libs/", "services/ services/"):
        assert f"COPY {copied}" in "\n".join(f"{k} {a}" for k, a in stages["build"]["instructions"])
    for service in SERVICES:
        assert f"COPY services/{service}/pyproject.toml services/{service}/" in "\n".join(
            f"{k} {a}" for k, a in stages["build"]["instructions"]
        ), "every workspace member's metadata is needed by uv sync"


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_stage_of_each_service(service: str) -> None:
    stages = _stages()
    stage = f"service-{service}"
    assert stage in stages, f"no stage {stage}"
    chain = _stage_chain(stages, stage)
    scripts = _pyproject(service)["project"]["scripts"]
    assert scripts, f"services/{service} has no console script"
    entrypoint = json.loads(_find(stages, chain, "ENTRYPOINT")[-1])
    assert entrypoint == [f"prsnl-{service}"]
    assert entrypoint[0] in scripts
    runs = " ".join(_find(stages, chain, "RUN"))
    assert ("apt-get install" in runs and "ffmpeg" in runs) == (service in NEEDS_FFMPEG)
    assert bool(_find(stages, chain, "HEALTHCHECK")) == (service == "ingest")
    if service == "ingest":
        assert "/healthz" in _find(stages, chain, "HEALTHCHECK")[0]
        assert "PRSNL_INGEST_HOST=0.0.0.0" in " ".join(_find(stages, chain, "ENV"))
        assert _find(stages, chain, "EXPOSE") == [f"{INGEST_PORT} {INGEST_METRICS_PORT}"]
    else:
        assert _find(stages, chain, "EXPOSE") == [str(METRICS_PORTS[service])]


def test_final_image_runs_as_a_user_with_the_media_volume() -> None:
    stages = _stages()
    final = dict(stages["final"]["instructions"])
    assert final["COPY"] == "--from=build /app/.venv /app/.venv"
    user = final["USER"].split(":")[0]
    assert user not in {"root", "0"}
    assert json.loads(final["VOLUME"]) == ["/data/media"]
    runtime_env = " ".join(_find(stages, ["runtime"], "ENV"))
    assert "PRSNL_MEDIA_ROOT=/data/media" in runtime_env
    assert "PATH=/app/.venv/bin:$PATH" in runtime_env
    runtime_runs = " ".join(_find(stages, ["runtime"], "RUN"))
    assert f"--uid {user}" in runtime_runs
    assert "chown prsnl:prsnl /data/media" in runtime_runs


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = {
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".venv", "**/.venv", "var", ".git", "tests", "**/__pycache__"):
        assert required in patterns
    for cache in (".mypy_cache", ".ruff_cache", ".pytest_cache"):
        assert cache in patterns
    for needed in ("pyproject.toml", "uv.lock", "libs", "services", "*", "**"):
        assert needed not in patterns, f"{needed} is needed by deploy/Dockerfile"


def _uv() -> list[str]:
    # `uv run` names its own binary in UV; otherwise uv on PATH, or the module.
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv:
        return [uv]
    if importlib.util.find_spec("uv") is None:
        pytest.skip("uv is not installed")
    return [sys.executable, "-m", "uv"]


def _exported(package: str) -> set[str]:
    result = subprocess.run(
        [*_uv(), "export", "--frozen", "--no-dev", "--no-hashes", "--package", package],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    names = set()
    for line in result.stdout.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if match:
            names.add(match[1].lower())
        elif line.startswith("-e "):
            names.add(Path(line[3:].strip()).name)
    return names


@pytest.mark.parametrize(
    ("package", "present", "absent"),
    [
        ("prsnl-downloader", {"yt-dlp", "faststream"}, {"litestar", "ffmpeg-python", "uvicorn"}),
        ("prsnl-ingest", {"litestar", "uvicorn", "faststream"}, {"yt-dlp", "ffmpeg-python"}),
        ("prsnl-transcoder", {"ffmpeg-python", "faststream"}, {"yt-dlp", "litestar"}),
        (
            "prsnl-storage-janitor",
            {"faststream", "asyncpg"},
            {"yt-dlp", "litestar", "ffmpeg-python"},
        ),
    ],
)
def test_each_image_gets_only_its_service_dependencies(
    package: str, present: set[str], absent: set[str]
) -> None:
    # What `uv sync --frozen --no-dev --package <package>` in deploy/Dockerfile installs.
    exported = _exported(package)
    assert present <= exported, f"{package} misses {present - exported}"
    assert not absent & exported, f"{package} would install {absent & exported}"
    # Test and lint tools never reach an image.
    assert not {"pytest", "ruff", "mypy"} & exported


# --- compose -------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _built(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def test_compose_builds_every_service_from_the_dockerfile(compose: dict[str, Any]) -> None:
    built = _built(compose)
    assert set(built) == set(SERVICES)
    for name, service in built.items():
        build = service["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT, name
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE, name
        target = build["args"]["SERVICE"]
        assert target == name
        assert target in SERVICES
        package_dir = ROOT / "services" / target
        assert (package_dir / "pyproject.toml").is_file(), f"no package for SERVICE={target}"
        assert _pyproject(target)["project"]["name"] == f"prsnl-{target}"


def test_compose_infrastructure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.12-management")
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["jaeger"]["image"].startswith("jaegertracing/all-in-one:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert services["loki"]["image"].startswith("grafana/loki:3.")
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector:")
    assert "healthcheck" in services["rabbitmq"]
    assert "healthcheck" in services["postgres"]
    assert any(p.endswith(":16686") for p in services["jaeger"]["ports"])
    assert any(p.endswith(f":{INGEST_PORT}") for p in services["ingest"]["ports"])
    # Every bind-mounted file or folder exists next to compose.yaml.
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
    rabbit_mounts = " ".join(services["rabbitmq"]["volumes"])
    assert "/etc/rabbitmq/enabled_plugins" in rabbit_mounts
    assert "/etc/rabbitmq/conf.d/" in rabbit_mounts


@pytest.mark.parametrize("worker", WORKERS)
def test_workers_can_be_scaled(compose: dict[str, Any], worker: str) -> None:
    service = compose["services"][worker]
    assert "container_name" not in service, f"{worker} cannot be scaled with a container_name"
    assert "ports" not in service, f"{worker} cannot be scaled with fixed host ports"
    assert "deploy" not in service or "replicas" not in service["deploy"]


def test_no_built_service_has_a_container_name(compose: dict[str, Any]) -> None:
    assert not [name for name, svc in _built(compose).items() if "container_name" in svc]


@pytest.mark.parametrize("service", SERVICES)
def test_compose_service_environment(compose: dict[str, Any], service: str) -> None:
    config = compose["services"][service]
    env = config["environment"]
    assert isinstance(env, dict)
    _assert_known_variables(list(env), f"compose service {service}")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == COLLECTOR_URL
    assert env["OTEL_LOGS_EXPORTER"] == "otlp"
    # It reaches the collector: they share a network.
    assert set(_networks(config)) & set(_networks(compose["services"]["otel-collector"]))
    assert "@rabbitmq:5672" in env["PRSNL_RABBITMQ_URL"]
    assert "@postgres:5432/" in env["PRSNL_DATABASE_URL"]
    assert env["PRSNL_MEDIA_ROOT"] == "/data/media"
    assert "media:/data/media" in config["volumes"]
    depends = config["depends_on"]
    assert depends["rabbitmq"]["condition"] == "service_healthy"
    for target, condition in depends.items():
        if condition["condition"] == "service_healthy":
            has_check = "healthcheck" in compose["services"][target]
            assert has_check or target == "ingest", f"{target} has no healthcheck"
    if service in METRICS_PORTS:
        assert int(env[f"PRSNL_{_prefix(service)}_METRICS_PORT"]) == METRICS_PORTS[service]
        # Long enough for FastStream's graceful shutdown of in-flight messages.
        grace = config["stop_grace_period"]
        assert grace.endswith("s") and int(grace[:-1]) > FASTSTREAM_GRACE
    else:
        assert env["PRSNL_INGEST_HOST"] == "0.0.0.0"
        assert int(env["PRSNL_INGEST_PORT"]) == INGEST_PORT
        assert int(env["PRSNL_INGEST_METRICS_PORT"]) == INGEST_METRICS_PORT
        assert "/healthz" in " ".join(config["healthcheck"]["test"])


def _networks(service: dict[str, Any]) -> list[str]:
    return list(service.get("networks", ["default"]))


# --- telemetry: the collector, Loki and Grafana's links between traces and logs ----

COLLECTOR_URL = "http://otel-collector:4318"


def _service_url(url: str) -> tuple[str, int]:
    host, _, port = url.split("//", 1)[-1].split("/", 1)[0].partition(":")
    return host, int(port)


def test_collector_pipelines_send_spans_to_jaeger_and_logs_to_loki(
    compose: dict[str, Any],
) -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector" / "config.yaml").read_text())
    collector = compose["services"]["otel-collector"]
    assert "./otel-collector/config.yaml:/etc/otelcol/config.yaml:ro" in collector["volumes"]
    listen = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert listen.rsplit(":", 1)[1] == str(_service_url(COLLECTOR_URL)[1])
    pipelines = config["service"]["pipelines"]
    for name, pipeline in pipelines.items():
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline[part]) <= set(config[part]), f"{name}: undefined {part}"
    (traces,) = pipelines["traces"]["exporters"]
    jaeger_host, jaeger_port = config["exporters"][traces]["endpoint"].split(":")
    assert jaeger_host == "jaeger" and jaeger_port in compose["services"]["jaeger"]["expose"]
    (logs,) = pipelines["logs"]["exporters"]
    loki = config["exporters"][logs]["endpoint"]
    assert logs.startswith("otlphttp") and loki.endswith("/otlp"), loki  # Loki's OTLP intake
    host, port = _service_url(loki)
    assert host == "loki" and str(port) in compose["services"]["loki"]["expose"]
    assert {"jaeger", "loki"} <= set(collector["depends_on"])


def test_loki_keeps_otlp_attributes_as_structured_metadata(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "loki" / "loki.yaml").read_text())
    loki = compose["services"]["loki"]
    assert "./loki/loki.yaml:/etc/loki/loki.yaml:ro" in loki["volumes"]
    assert config["server"]["http_listen_port"] == 3100
    # OTLP intake needs the tsdb store on schema v13 and structured metadata.
    (schema,) = config["schema_config"]["configs"]
    assert (schema["store"], schema["schema"]) == ("tsdb", "v13")
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert config["compactor"]["retention_enabled"] is True
    assert any(v.startswith("loki-data:") for v in loki["volumes"]), "logs survive a restart"


def test_grafana_links_a_span_to_its_lines_and_a_line_to_its_trace() -> None:
    path = DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
    sources = {s["uid"]: s for s in yaml.safe_load(path.read_text())["datasources"]}
    assert sources["loki"]["type"] == "loki" and sources["loki"]["url"] == "http://loki:3100"
    to_logs = sources["jaeger"]["jsonData"]["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == "loki" and to_logs["customQuery"] is True
    # $$ keeps Grafana's provisioning from reading ${...} as an environment variable.
    assert 'trace_id="$${__span.traceId}"' in to_logs["query"]
    (to_trace,) = sources["loki"]["jsonData"]["derivedFields"]
    assert to_trace["datasourceUid"] == "jaeger"
    # Loki stores an OTLP record's trace id as the structured metadata field trace_id.
    assert (to_trace["matcherType"], to_trace["matcherRegex"]) == ("label", "trace_id")
    assert to_trace["url"] == "$${__value.raw}"


def _prefix(service: str) -> str:
    return {"storage-janitor": "JANITOR", "telegram-gateway": "TELEGRAM"}.get(
        service, service.upper()
    )


def test_rabbitmq_exposes_per_queue_metrics() -> None:
    plugins = (DEPLOY / "rabbitmq" / "enabled_plugins").read_text()
    assert re.fullmatch(r"\[[a-z_,\s]+\]\.\s*", plugins)
    assert "rabbitmq_prometheus" in plugins
    assert "rabbitmq_management" in plugins
    conf = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text()
    settings = dict(
        line.split("=", 1)
        for line in conf.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    settings = {k.strip(): v.strip() for k, v in settings.items()}
    assert settings["prometheus.return_per_object_metrics"] == "true"


def test_prometheus_scrapes_every_service_and_rabbitmq() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # The gateway's metrics have their own port, off the public API.
    expected = {"ingest": INGEST_METRICS_PORT, **METRICS_PORTS}
    for service, port in expected.items():
        # DNS discovery finds every replica of a scaled service.
        (sd,) = jobs[service]["dns_sd_configs"]
        assert sd["names"] == [service]
        assert sd["type"] == "A"
        assert sd["port"] == port
    assert jobs["rabbitmq"]["static_configs"][0]["targets"] == ["rabbitmq:15692"]


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/bootstrap.sh installs Debian's prometheus"
    done = subprocess.run(
        [promtool, *args],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_prometheus_config_and_alert_rules_pass_promtool() -> None:
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in _promtool("check", "rules", "alerts.yml")


def test_every_alert_rule_has_unit_tests_that_pass() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    names = {r["alert"] for group in rules["groups"] for r in group["rules"]}
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts.test.yml").read_text())
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert names <= tested, f"rules without a firing test: {sorted(names - tested)}"
    assert "SUCCESS" in _promtool("test", "rules", "alerts.test.yml")


def test_alert_rules_use_the_metrics_the_services_define() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [r["expr"] for group in rules["groups"] for r in group["rules"]]
    used: set[str] = set()
    for expr in exprs:
        used.update(re.findall(r"\bprsnl_[a-z0-9_]+", re.sub(r'"[^"]*"', '""', expr)))
    defined = _defined_metrics()
    for metric in used:
        base = re.sub(r"_total$", "", metric)
        assert {metric, base} & defined, f"an alert queries {metric}, which no service defines"


# --- Grafana -------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p["targets"]]


def _metric_names(dashboard: dict[str, Any], prefix: str) -> set[str]:
    """Metric names with ``prefix`` the dashboard queries (label values left out)."""
    names: set[str] = set()
    for expr in _exprs(dashboard):
        names.update(re.findall(rf"\b{prefix}_[a-z0-9_]+", re.sub(r'"[^"]*"', '""', expr)))
    return names


def test_every_dashboard_panel_has_a_query(dashboard: dict[str, Any]) -> None:
    panels = _panels(dashboard)
    assert len(panels) >= 15
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
        assert panel["datasource"]["uid"] == "${datasource}"


def test_dashboard_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def _defined_metrics() -> set[str]:
    """Every prsnl_ metric the services register, read from the registry after importing them."""
    import importlib

    from prometheus_client import REGISTRY

    for source in [*ROOT.glob("services/*/src/*/**/*.py"), *ROOT.glob("libs/*/src/*/**/*.py")]:
        package_root = next(p for p in source.parents if p.name == "src")
        module = ".".join(source.relative_to(package_root).with_suffix("").parts)
        if not module.endswith("__main__"):
            importlib.import_module(module.removesuffix(".__init__"))
    return {name for name in REGISTRY._names_to_collectors if name.startswith("prsnl_")}


def test_dashboard_uses_the_metrics_the_services_define(dashboard: dict[str, Any]) -> None:
    defined = _defined_metrics()
    used = _metric_names(dashboard, "prsnl")
    for required in (
        "prsnl_captures_total",
        "prsnl_item_outcomes_total",
        "prsnl_download_seconds_bucket",
        "prsnl_downloaded_bytes_total",
        "prsnl_processing_seconds_bucket",
        "prsnl_processing_outcomes_total",
        "prsnl_storage_bytes",
        "prsnl_storage_free_bytes",
        "prsnl_janitor_files_removed_total",
    ):
        assert required in used
    for metric in used:
        base = re.sub(r"_(bucket|count|sum)$", "", metric)
        candidates = {base, re.sub(r"_total$", "", base)}
        assert candidates & defined, f"dashboard queries {metric}, which no service defines"


def test_dashboard_uses_framework_metric_names(dashboard: dict[str, Any]) -> None:
    from faststream.prometheus.container import MetricsContainer
    from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    MetricsContainer(registry, custom_label_names=[])
    faststream = set(registry._names_to_collectors)
    used = _metric_names(dashboard, "faststream")
    assert used, "no FastStream panels"
    assert used <= faststream, used - faststream

    import inspect

    prefix = PrometheusConfig().prefix
    middleware = inspect.getsource(PrometheusMiddleware)
    used = _metric_names(dashboard, prefix)
    assert used, "no HTTP panels"
    for metric in used:
        suffix = re.sub(r"_bucket$", "", metric)[len(prefix) :]
        assert f'_{suffix.lstrip("_")}"' in middleware, metric
    app = (ROOT / "services" / "ingest" / "src" / "prsnl_ingest" / "app.py").read_text()
    assert 'app_name="prsnl_ingest"' in app
    for expr in _exprs(dashboard):
        if f"{prefix}_" in expr:
            assert 'app_name="prsnl_ingest"' in expr
    assert any("rabbitmq_queue_messages_ready" in expr for expr in _exprs(dashboard))


def test_grafana_provisioning(compose: dict[str, Any], dashboard: dict[str, Any]) -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "datasources.yaml").read_text())
    by_type = {s["type"]: s for s in sources["datasources"]}
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["jaeger"]["url"] == "http://jaeger:16686"
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
    assert variable["current"]["value"] == by_type["prometheus"]["uid"]
    providers = yaml.safe_load((provisioning / "dashboards" / "prsnl.yaml").read_text())
    path = providers["providers"][0]["options"]["path"]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


# --- Kubernetes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files, "kustomization.yaml must list every file"
    docs: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            if doc is None:
                continue
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], name
            docs.append(doc)
    return docs


def _of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_k8s_has_every_piece(k8s: list[dict[str, Any]]) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    namespaces = _of_kind(k8s, "Namespace")
    assert list(namespaces) == [kustomization["namespace"]]
    assert set(_of_kind(k8s, "Deployment")) == set(K8S_SERVICES)
    assert "ingest" in _of_kind(k8s, "Service")
    assert _of_kind(k8s, "ConfigMap") and _of_kind(k8s, "Secret")
    (pvc,) = _of_kind(k8s, "PersistentVolumeClaim").values()
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "shared" in (K8S / "media-pvc.yaml").read_text()


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


@pytest.mark.parametrize("service", K8S_SERVICES)
def test_k8s_deployment(k8s: list[dict[str, Any]], service: str) -> None:
    deployment = _of_kind(k8s, "Deployment")[service]
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert container["image"].split(":")[0] == f"prsnl-media/{service}"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # Shared settings and secrets, and the shared media store at PRSNL_MEDIA_ROOT.
    config = _of_kind(k8s, "ConfigMap")
    secrets = _of_kind(k8s, "Secret")
    refs = container["envFrom"]
    assert {r["configMapRef"]["name"] for r in refs if "configMapRef" in r} <= set(config)
    assert {r["secretRef"]["name"] for r in refs if "secretRef" in r} <= set(secrets)
    media_root = next(iter(config.values()))["data"]["PRSNL_MEDIA_ROOT"]
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == media_root
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] in _of_kind(k8s, "PersistentVolumeClaim")
    _assert_known_variables([e["name"] for e in container.get("env", [])], f"{service} Deployment")
    assert pod["securityContext"]["runAsNonRoot"] is True
    if service in METRICS_PORTS:
        assert pod["terminationGracePeriodSeconds"] > FASTSTREAM_GRACE
        (port,) = container["ports"]
        assert port["containerPort"] == METRICS_PORTS[service]
    else:
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        port, metrics = container["ports"]
        assert port["containerPort"] == INGEST_PORT
        assert metrics["containerPort"] == INGEST_METRICS_PORT
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(INGEST_METRICS_PORT)
        service_doc = _of_kind(k8s, "Service")["ingest"]
        assert service_doc["spec"]["selector"].items() <= labels.items()
        assert service_doc["spec"]["ports"][0]["targetPort"] == port["name"]


def test_k8s_shared_settings_are_known(k8s: list[dict[str, Any]]) -> None:
    for doc in _of_kind(k8s, "ConfigMap").values():
        _assert_known_variables(list(doc["data"]), f"ConfigMap {doc['metadata']['name']}")
    mounted = {
        source["secretRef"]["name"]
        for deployment in _of_kind(k8s, "Deployment").values()
        for container in deployment["spec"]["template"]["spec"]["containers"]
        for source in container.get("envFrom", [])
        if "secretRef" in source
    }
    assert mounted, "the services read their connection strings from a Secret"
    for name in mounted:
        doc = _of_kind(k8s, "Secret")[name]
        _assert_known_variables(list(doc["stringData"]), f"Secret {name}")


def test_keda_scales_workers_on_their_own_queues(k8s: list[dict[str, Any]]) -> None:
    deployments = _of_kind(k8s, "Deployment")
    auths = _of_kind(k8s, "TriggerAuthentication")
    secrets = _of_kind(k8s, "Secret")
    namespace = next(iter(_of_kind(k8s, "ConfigMap").values()))["data"]["PRSNL_NAMESPACE"]
    topology = Topology(CommonSettings(namespace=namespace))
    scaled = _of_kind(k8s, "ScaledObject")
    targets = {so["spec"]["scaleTargetRef"]["name"]: so for so in scaled.values()}
    assert {"downloader", "transcoder"} <= set(targets)
    queues_seen: set[str] = set()
    for target, so in targets.items():
        spec = so["spec"]
        assert target in deployments, f"ScaledObject targets missing Deployment {target}"
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert "replicas" not in deployments[target]["spec"], "KEDA owns the replica count"
        expected = {topology.queue_name(target, e.routing_key) for e in SUBSCRIPTIONS[target]}
        for trigger in spec["triggers"]:
            assert trigger["type"] == "rabbitmq"
            metadata = trigger["metadata"]
            assert all(isinstance(v, str) for v in metadata.values()), "KEDA metadata are strings"
            assert metadata["mode"] == "QueueLength"
            # Over the management API the length counts unacknowledged messages too.
            assert metadata["protocol"] == "http"
            assert metadata.get("excludeUnacknowledged", "false") == "false"
            assert float(metadata["value"]) > 0
            queue = metadata["queueName"]
            assert re.fullmatch(
                rf"{re.escape(namespace)}\.{re.escape(target)}\.[a-z]+(-[a-z]+)*", queue
            )
            assert queue in expected, f"{queue} is not a queue {target} consumes"
            queues_seen.add(queue)
            auth = auths[trigger["authenticationRef"]["name"]]
            (ref,) = auth["spec"]["secretTargetRef"]
            assert ref["parameter"] == "host"
            assert ref["key"] in secrets[ref["name"]]["stringData"]
            assert secrets[ref["name"]]["stringData"][ref["key"]].startswith("http")
    assert "prsnl.downloader.url-captured" in queues_seen
    assert "prsnl.transcoder.video-downloaded" in queues_seen


# --- scripts/ytdlp.sh ----------------------------------------------------------


def _pin() -> str:
    match = re.search(r'"yt-dlp==([^"]+)"', DOWNLOADER_PYPROJECT.read_text())
    assert match
    return match[1]


@pytest.fixture
def run_ytdlp(tmp_path: Path) -> Iterator[Any]:
    history = tmp_path / "ytdlp-previous"
    watched = [DOWNLOADER_PYPROJECT, ROOT / "uv.lock", ROOT / "var" / "ytdlp-previous"]
    before = {p: p.read_bytes() if p.exists() else None for p in watched}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "YTDLP_HISTORY": str(history)}
        return subprocess.run(
            ["bash", str(YTDLP), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    run.history = history  # type: ignore[attr-defined]
    yield run
    after = {p: p.read_bytes() if p.exists() else None for p in watched}
    assert after == before, "ytdlp.sh changed files in a dry run"


def test_ytdlp_script_is_valid_bash() -> None:
    assert os.access(YTDLP, os.X_OK), "scripts/ytdlp.sh must be executable"
    subprocess.run(["bash", "-n", str(YTDLP)], check=True, timeout=30)
    assert "set -euo pipefail" in YTDLP.read_text()


def test_ytdlp_help(run_ytdlp: Any) -> None:
    result = run_ytdlp("--help")
    assert result.returncode == 0, result.stderr
    for word in ("upgrade", "rollback", "current", "--dry-run", "--force"):
        assert word in result.stdout


def test_ytdlp_upgrade_dry_run_prints_the_plan(run_ytdlp: Any) -> None:
    result = run_ytdlp("upgrade", "2099.1.1", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{_pin()} → 2099.1.1" in out
    assert '"yt-dlp==2099.1.1"' in out
    assert "uv lock --upgrade-package yt-dlp" in out
    assert "uv sync --frozen" in out
    assert "nothing was changed" in out
    assert not run_ytdlp.history.exists()


def test_ytdlp_upgrade_refuses_an_older_version_unless_forced(run_ytdlp: Any) -> None:
    refused = run_ytdlp("upgrade", "2000.01.01", "--dry-run")
    assert refused.returncode == 3
    assert "not newer" in refused.stderr
    same = run_ytdlp("upgrade", _pin(), "--dry-run")
    assert same.returncode == 3
    forced = run_ytdlp("upgrade", "2000.1.1", "--dry-run", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "2000.1.1" in forced.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("upgrade", "latest", "--dry-run"),
        ("upgrade", "2099.1.1", "2099.1.2", "--dry-run"),
        ("upgrade", "--bogus"),
        ("rollback", "2026.1.1"),
        ("frobnicate",),
        (),
    ],
)
def test_ytdlp_usage_errors(run_ytdlp: Any, args: tuple[str, ...]) -> None:
    result = run_ytdlp(*args)
    assert result.returncode == 2, result
    assert result.stderr


def test_ytdlp_rollback_dry_run_uses_the_history(run_ytdlp: Any) -> None:
    empty = run_ytdlp("rollback", "--dry-run")
    assert empty.returncode == 3
    assert "nothing to roll back" in empty.stderr
    run_ytdlp.history.write_text("2026.1.1\n2026.2.4\n")
    result = run_ytdlp("rollback", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"{_pin()} → 2026.2.4" in result.stdout
    assert run_ytdlp.history.read_text() == "2026.1.1\n2026.2.4\n"


def test_ytdlp_current(run_ytdlp: Any) -> None:
    run_ytdlp.history.write_text("2026.2.4\n")
    result = run_ytdlp("current")
    assert result.returncode == 0, result.stderr
    assert f"pinned:    {_pin()}" in result.stdout
    assert "previous:  2026.2.4" in result.stdout


# --- The downloader's egress policy, the network backstop of the address guard ---------

# What the policy must refuse whatever the code does (README, "Security of captured links").
MUST_REFUSE = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
    "169.254.169.254/32",
    "100.100.100.200/32",
    "168.63.129.16/32",
    "fd00:ec2::254/128",
)


def _internet_blocks(policy: dict[str, Any]) -> dict[str, list[str]]:
    """The ipBlock rules of the policy: cidr -> its except list."""
    return {
        peer["ipBlock"]["cidr"]: peer["ipBlock"].get("except", [])
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    }


def test_the_downloader_has_an_egress_policy(k8s: list[dict[str, Any]]) -> None:
    policy = _of_kind(k8s, "NetworkPolicy")["downloader-egress"]
    downloader = _of_kind(k8s, "Deployment")["downloader"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= downloader["spec"]["template"]["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Egress"]
    ports = {
        (port.get("protocol", "TCP"), port["port"])
        for rule in policy["spec"]["egress"]
        if "ports" in rule
        for port in rule["ports"]
    }
    assert {("UDP", 53), ("TCP", 53), ("TCP", 5672)} <= ports  # DNS and RabbitMQ


@pytest.mark.parametrize("refused", MUST_REFUSE)
def test_the_egress_policy_refuses_what_is_not_public(
    k8s: list[dict[str, Any]], refused: str
) -> None:
    blocks = _internet_blocks(_of_kind(k8s, "NetworkPolicy")["downloader-egress"])
    assert set(blocks) == {"0.0.0.0/0", "::/0"}, "internet egress is two ipBlocks, v4 and v6"
    network = ipaddress.ip_network(refused)
    family = "0.0.0.0/0" if network.version == 4 else "::/0"
    excepted = [ipaddress.ip_network(e) for e in blocks[family]]
    assert any(
        network.subnet_of(e)
        for e in excepted
        if e.version == network.version  # type: ignore[arg-type]
    ), f"{refused} is reachable through the egress policy"


def test_compose_puts_the_downloader_on_its_own_network(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["downloader"]["networks"] == ["downloader"]
    on_it = {name for name, s in services.items() if "downloader" in s.get("networks", [])}
    assert on_it == {"downloader", "rabbitmq", "otel-collector", "prometheus"}
    assert "postgres" not in on_it and "ingest" not in on_it
    assert "DOCKER-USER" in COMPOSE.read_text(), "compose says how to filter what it cannot"


# --- CI workflow -----------------------------------------------------------------

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def test_ci_workflow_is_a_valid_github_workflow() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_finds_nothing_in_the_workflows() -> None:
    """actionlint: expressions, job graph, action inputs and deprecated action runtimes."""
    actionlint = Path(sys.executable).with_name("actionlint")
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    done = subprocess.run(
        [str(actionlint), "-no-color", *map(str, workflows)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_catches_a_mistake(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.evnt }}\n"
    )
    actionlint = Path(sys.executable).with_name("actionlint")
    done = subprocess.run(
        [str(actionlint), "-no-color", str(broken)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1 and 'property "evnt" is not defined' in done.stdout


def test_ci_runs_make_test_and_builds_every_service_image() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    test_job = workflow["jobs"]["test"]
    assert test_job["container"]["image"].startswith("python:3.11-bookworm")
    assert any(step.get("run") == ".ci/run" for step in test_job["steps"])
    assert test_job["timeout-minutes"] <= 90
    images = workflow["jobs"]["images"]
    assert set(images["strategy"]["matrix"]["service"]) == set(METRICS_PORTS) | {"ingest"}
    (build,) = [s for s in images["steps"] if "build-push-action" in s.get("uses", "")]
    assert build["with"]["file"] == "deploy/Dockerfile"
    assert build["with"]["build-args"] == "SERVICE=${{ matrix.service }}"


# --- nginx -----------------------------------------------------------------------


def test_the_shipped_nginx_configuration_is_valid(tmp_path: Path) -> None:
    """``nginx -t`` on deploy/nginx/prsnl.conf, its upstream host and cache folder local."""
    from bench.nginx import nginx_binary

    shipped = (DEPLOY / "nginx" / "prsnl.conf").read_text()
    assert "auth_request /_authorize;" in shipped and "proxy_cache prsnl_auth;" in shipped
    local = shipped.replace("ingest:8000", "127.0.0.1:8000").replace(
        "/var/cache/nginx/prsnl-auth", str(tmp_path / "cache")
    )
    (tmp_path / "prsnl.conf").write_text(local)
    temp = "".join(f"{name}_temp_path {tmp_path / name};\n" for name in ("client_body", "proxy"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{\n{temp}include {tmp_path / 'prsnl.conf'};\n}}\n"
    )
    done = subprocess.run(
        [nginx_binary(), "-t", "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- the object store in compose and Kubernetes ------------------------------------------


def _interpolated(value: str) -> str:
    """A compose value with every ${NAME:-default} replaced by its default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def test_compose_offers_seaweedfs_as_the_media_store(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("seaweedfs", "seaweedfs-bucket"):
        assert services[name]["profiles"] == ["s3"], f"{name} only with --profile s3"
    assert "-s3" in services["seaweedfs"]["command"].split()
    identity = json.loads(_interpolated(compose["configs"]["seaweedfs-s3"]["content"]))
    (credentials,) = identity["identities"][0]["credentials"]
    for service in SERVICES:
        env = compose["services"][service]["environment"]
        assert env["PRSNL_MEDIA_STORE"] == "${PRSNL_MEDIA_STORE:-}"  # the directory by default
        assert _interpolated(env["PRSNL_S3_ACCESS_KEY_ID"]) == credentials["accessKey"]
        assert _interpolated(env["PRSNL_S3_SECRET_ACCESS_KEY"]) == credentials["secretKey"]
    assert services["seaweedfs-bucket"]["depends_on"]["seaweedfs"]["condition"] == (
        "service_healthy"
    )


@pytest.fixture(scope="module")
def object_store_k8s() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with kustomize) is not installed")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "k8s-object-store")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def test_k8s_on_an_object_store_needs_no_shared_volume(
    object_store_k8s: list[dict[str, Any]], k8s: list[dict[str, Any]]
) -> None:
    assert not _of_kind(object_store_k8s, "PersistentVolumeClaim")
    deployments = _of_kind(object_store_k8s, "Deployment")
    assert set(deployments) == set(_of_kind(k8s, "Deployment"))
    for name, deployment in deployments.items():
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert "persistentVolumeClaim" not in volumes["media"], name
        assert "emptyDir" in volumes["media"], f"{name} keeps its scratch in an emptyDir"
    config = _of_kind(object_store_k8s, "ConfigMap")["prsnl-config"]["data"]
    assert parse_store_url(config["PRSNL_MEDIA_STORE"])
    assert config["PRSNL_S3_ENDPOINT"].startswith("http")
    secrets = _of_kind(object_store_k8s, "Secret")["prsnl-secrets"]["stringData"]
    assert {"PRSNL_S3_ACCESS_KEY_ID", "PRSNL_S3_SECRET_ACCESS_KEY"} <= set(secrets)
    _assert_known_variables(list(config), "object-store ConfigMap")
    _assert_known_variables(list(secrets), "object-store Secret")
