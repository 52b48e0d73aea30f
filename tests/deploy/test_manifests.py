"""Compose, Kubernetes, Docker, systemd and collector files parse and name only real settings."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from bridge.config import Settings
from tests.deploy.files import (
    DEPLOY,
    SETTINGS_VARIABLES,
    load_all_yaml,
    load_yaml,
    unknown_variables,
)
from tests.support import ROOT, require_binary

K8S = DEPLOY / "kubernetes"
DEFAULT_PORT = Settings.model_fields["http_addr"].default.rpartition(":")[2]


def compose() -> dict[str, Any]:
    data = load_yaml(DEPLOY / "docker-compose.yml")
    assert isinstance(data, dict)
    return data


def kube_objects() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_all_yaml(path)
    ]


def kube(kind: str) -> dict[str, Any]:
    found = [obj for obj in kube_objects() if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def bridge_container() -> dict[str, Any]:
    containers = kube("Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "bridge")


# -- the check itself --


def test_known_variables_come_from_the_settings() -> None:
    """The allow-list is Settings' aliases, so a renamed setting shows up as unknown here."""
    assert {"SECRET_KEY_BASE", "EXESDB_HTTP_ADDR", "EXESDB_WEBHOOK_URLS"} <= SETTINGS_VARIABLES
    assert unknown_variables(["EXESDB_HTTP_ADRESS", "OTEL_SERVICE_NAME", "EXESDB_NODE"]) == [
        "EXESDB_HTTP_ADRESS"
    ]


# -- docker compose --


def test_compose_runs_the_whole_stack() -> None:
    """Compose has the bridge with --demo, Prometheus, Alertmanager, Grafana and a collector."""
    services = compose()["services"]
    assert set(services) >= {"bridge", "prometheus", "alertmanager", "grafana", "otel-collector"}
    assert "--demo" in services["bridge"]["command"]
    assert services["bridge"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / services["bridge"]["build"]["context"] / "deploy/Dockerfile").is_file()


def test_compose_sets_only_real_bridge_variables() -> None:
    """Every environment variable compose gives the bridge is a setting or an OTEL_* variable."""
    environment = compose()["services"]["bridge"]["environment"]
    names = (
        list(environment)
        if isinstance(environment, dict)
        else [e.split("=")[0] for e in environment]
    )
    assert names
    assert unknown_variables(names) == []
    Settings.model_validate(
        {k: re.sub(r"\$\{\w+:-(.*)\}", r"\1", str(v)) for k, v in environment.items()}
    )


def test_compose_wiring_matches_the_configs() -> None:
    """Prometheus scrapes the bridge's port, the bridge exports to the collector's OTLP port."""
    services = compose()["services"]
    env = services["bridge"]["environment"]
    port = env["EXESDB_HTTP_ADDR"].rpartition(":")[2]
    assert f"{port}:{port}" in services["bridge"]["ports"]
    prometheus = load_yaml(DEPLOY / "prometheus/prometheus.yml")
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "exesdb-bridge")
    assert job["static_configs"][0]["targets"] == [f"bridge:{port}"]
    collector = load_yaml(DEPLOY / "otel-collector.yaml")
    grpc = collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rpartition(":")[2]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-collector:{grpc}"
    assert env["EXESDB_ALERTMANAGER_URL"] == "http://alertmanager:9093"
    alertmanagers = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]


def test_compose_mounts_exist() -> None:
    """Every host path compose mounts (configs, rules, Grafana provisioning) exists."""
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    """The provisioned dashboard path is where compose mounts grafana/dashboards."""
    grafana = compose()["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    provider = load_yaml(ROOT / "grafana/provisioning/dashboards/exesdb.yml")["providers"][0]
    assert mounts["../grafana/dashboards"] == provider["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "grafana/dashboards" / home.rpartition("/")[2]).is_file()
    datasources = load_yaml(ROOT / "grafana/provisioning/datasources/exesdb.yml")["datasources"]
    assert {d["type"] for d in datasources} >= {"prometheus"}
    assert (
        next(d for d in datasources if d["type"] == "prometheus")["url"] == "http://prometheus:9090"
    )


# -- the OpenTelemetry Collector --


def test_collector_pipelines_use_defined_components() -> None:
    """Each pipeline's receivers, processors and exporters are defined; traces and logs flow."""
    config = load_yaml(DEPLOY / "otel-collector.yaml")
    pipelines = config["service"]["pipelines"]
    assert {"traces", "logs"} <= set(pipelines)
    for pipeline in pipelines.values():
        for section in ("receivers", "processors", "exporters"):
            for name in pipeline.get(section, []):
                assert name in config[section], f"{section} {name} is not defined"
    assert config["receivers"]["otlp"]["protocols"].keys() == {"grpc", "http"}


# -- Kubernetes --


def test_kubernetes_has_every_object() -> None:
    """Deployment, Service, ConfigMap, Secret, ServiceMonitor and PodDisruptionBudget parse."""
    kinds = sorted(obj["kind"] for obj in kube_objects())
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceMonitor"]
    )
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_kubernetes_sets_only_real_bridge_variables() -> None:
    """ConfigMap, Secret and container env name only settings, OTEL_* or $(helper) variables."""
    container = bridge_container()
    env_names = [item["name"] for item in container.get("env", [])]
    referenced = {
        name
        for item in container.get("env", [])
        for name in re.findall(r"\$\((\w+)\)", str(item.get("value", "")))
    }
    config_keys = list(kube("ConfigMap")["data"])
    secret_keys = list(kube("Secret")["stringData"])
    assert unknown_variables([*env_names, *config_keys, *secret_keys], referenced) == []
    Settings.model_validate({**kube("ConfigMap")["data"], **kube("Secret")["stringData"]})
    secrets = {"SECRET_KEY_BASE", "EXESDB_ADMIN_TOKEN", "EXESDB_WEBHOOK_SECRET"}
    assert secrets <= set(secret_keys)
    assert not secrets & set(config_keys), "secrets belong in the Secret"


def test_kubernetes_env_refs_resolve() -> None:
    """envFrom names the shipped ConfigMap and Secret; $(VAR) refers to an earlier variable."""
    container = bridge_container()
    refs = {(k, v["name"]) for ref in container["envFrom"] for k, v in ref.items()}
    assert refs == {
        ("configMapRef", kube("ConfigMap")["metadata"]["name"]),
        ("secretRef", kube("Secret")["metadata"]["name"]),
    }
    defined: set[str] = set()
    for item in container["env"]:
        for name in re.findall(r"\$\((\w+)\)", str(item.get("value", ""))):
            assert name in defined, f"{item['name']} refers to {name} before it is defined"
        defined.add(item["name"])


def test_deployment_probes_and_limits() -> None:
    """Liveness on /healthz, readiness on /readyz, requests and limits, non-root, the right port."""
    deployment = kube("Deployment")
    container = bridge_container()
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    port = container["ports"][0]
    assert (
        str(port["containerPort"])
        == kube("ConfigMap")["data"]["EXESDB_HTTP_ADDR"].rpartition(":")[2]
    )
    assert port["containerPort"] == int(DEFAULT_PORT)


def test_selectors_match_the_pods() -> None:
    """Service, PodDisruptionBudget and ServiceMonitor select what the Deployment runs."""
    pod_labels = kube("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = kube("Service")
    for selector in (
        service["spec"]["selector"],
        kube("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        kube("Deployment")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    monitor = kube("ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    # The shipped rules select job="exesdb-bridge": the job label must come out as that.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "exesdb-bridge"
    pdb = kube("PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] < kube("Deployment")["spec"]["replicas"]


def test_kustomize_builds() -> None:
    """`kubectl kustomize deploy/kubernetes` renders the objects into one namespace."""
    result = subprocess.run(
        [require_binary("kubectl"), "kustomize", str(K8S)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(objects) == len(kube_objects())
    assert {obj["metadata"]["namespace"] for obj in objects} == {"exesdb"}


# -- Docker and systemd --


def dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


def test_dockerfile_is_slim_non_root_with_a_healthcheck() -> None:
    """A slim Python base, a non-root user, a HEALTHCHECK on /healthz, the default port exposed."""
    instructions = dockerfile()
    bases = [arg for op, arg in instructions if op == "FROM"]
    assert all(re.match(r"python:3\.1[1-9]-slim", base) for base in bases), bases
    users = [arg for op, arg in instructions if op == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert [op for op, _ in instructions].index("USER") > max(
        i for i, (op, _) in enumerate(instructions) if op == "RUN"
    )
    healthchecks = [arg for op, arg in instructions if op == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert f"127.0.0.1:{DEFAULT_PORT}/healthz" in healthchecks[0]
    assert [arg for op, arg in instructions if op == "EXPOSE"] == [DEFAULT_PORT]
    for op, arg in instructions:
        if op == "COPY" and "--from" not in arg:
            for source in arg.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_dockerfile_sets_only_real_bridge_variables() -> None:
    """ENV names bridge settings (and Python's own switches) only."""
    names = [pair.split("=")[0] for op, arg in dockerfile() if op == "ENV" for pair in arg.split()]
    assert unknown_variables([n for n in names if not n.startswith("PYTHON")]) == []


def test_dockerignore_keeps_the_context_small() -> None:
    """The BuildKit ignore file next to the Dockerfile excludes everything but the sources."""
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("**")] == "**"
    assert {"!bridge/**", "!collectors/**", "!pyproject.toml"} <= set(ignore)


def systemd_unit() -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd/exesdb-bridge.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def test_systemd_unit() -> None:
    """The unit runs `exesdb-bridge run` unprivileged, with state and settings in place."""
    unit = systemd_unit()
    assert unit["ExecStart"][0].endswith("exesdb-bridge run")
    assert unit["DynamicUser"] == ["yes"]
    assert unit["StateDirectory"] == ["exesdb-bridge"]
    assert unit["RestartPreventExitStatus"] == ["2"]  # bad configuration: do not loop
    names = [value.split("=")[0] for value in unit["Environment"]]
    assert unknown_variables(names) == []
    assert "EXESDB_STATE_DIR=/var/lib/exesdb-bridge" in unit["Environment"]


@pytest.mark.parametrize(
    "path", sorted(DEPLOY.rglob("*.y*ml")), ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_every_yaml_file_parses(path) -> None:
    """Every YAML file under deploy/ is valid YAML."""
    assert load_all_yaml(path)
