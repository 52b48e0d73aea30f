"""Compose, Kubernetes, Docker, systemd and collector files parse and name only real settings."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge import __version__
from bridge.cli import build_parser
from bridge.cli.healthcheck import DEFAULT_TIMEOUT
from bridge.settings import Settings
from tests.deploy.files import (
    DEPLOY,
    SETTINGS_VARIABLES,
    load_all_yaml,
    load_yaml,
    unknown_variables,
)
from tests.doc_text import fenced, page, pages, spans
from tests.doc_text import section as doc_section
from tests.support import ROOT, require_binary

K8S = DEPLOY / "kubernetes"
DEFAULT_PORT = Settings.model_fields["http_addr"].default.rpartition(":")[2]
HEALTHCHECK_COMMAND = ["exesdb-bridge", "healthcheck"]
READINESS_COMMAND = [*HEALTHCHECK_COMMAND, "--ready"]
# docker stop and podman stop wait this long after the stop signal before they kill.
ENGINE_STOP_TIMEOUT_S = 10
STATE_DIR = "/var/lib/exesdb-bridge"
MAX_CONNECTIONS = Settings.model_fields["http_max_connections"].default
# `systemd-analyze security`'s exposure level, in tenths (its --threshold): 2.0 at most.
MAX_SYSTEMD_EXPOSURE = 20


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


def kube(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        obj
        for obj in kube_objects()
        if obj["kind"] == kind and name in (None, obj["metadata"]["name"])
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def bridge_container() -> dict[str, Any]:
    containers = kube("StatefulSet")["spec"]["template"]["spec"]["containers"]
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


def test_compose_runs_the_bridge_unprivileged_read_only_with_the_image_healthcheck() -> None:
    """The bridge: non-root, read-only root, no capabilities, `exesdb-bridge healthcheck`."""
    bridge = compose()["services"]["bridge"]
    assert bridge["user"].split(":")[0] not in {"root", "0"}
    assert bridge["read_only"] is True
    assert bridge["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in bridge["security_opt"]
    assert bridge["healthcheck"]["test"] == ["CMD", *HEALTHCHECK_COMMAND]
    # The demo's state in a folder of its own on the volume, not where a real bridge keeps its.
    assert bridge["environment"]["EXESDB_STATE_DIR"] == f"{STATE_DIR}/demo"
    assert f"bridge-state:{STATE_DIR}" in bridge["volumes"]


def test_compose_restarts_every_service_as_the_deployment_page_says() -> None:
    """Every service restarts unless stopped, a configuration error (exit 2) included, which
    docs/deployment.md says of the stack (the systemd unit alone spares exit 2)."""
    services = compose()["services"]
    assert {name: s.get("restart") for name, s in services.items()} == dict.fromkeys(
        services, "unless-stopped"
    )
    page = (ROOT / "docs" / "deployment.md").read_text()
    stack = page.partition("## Run the full stack")[2].partition("\n## ")[0]
    assert "restarts unless stopped (`restart: unless-stopped`)" in stack
    assert "exit 2" in stack
    assert (
        "RestartPreventExitStatus=2" in (DEPLOY / "systemd" / "exesdb-bridge.service").read_text()
    )


def test_the_deployment_page_puts_the_env_file_where_compose_reads_it() -> None:
    """Compose reads `.env` from the folder of the file `-f` names (docker compose since 1.28,
    podman-compose), not the working folder: the page's compose command and its `.env` agree,
    every variable the compose file takes from there is named beside it, and git ignores it."""
    page = (ROOT / "docs" / "deployment.md").read_text()
    stack = page.partition("## Run the full stack")[2].partition("\n## ")[0]
    [compose_file] = set(re.findall(r"docker compose -f (\S+)", stack))
    env_file = str(Path(compose_file).parent / ".env")
    assert env_file == "deploy/.env"
    paragraph = "".join(part for part in stack.split("\n\n") if f"`{env_file}`" in part)
    assert paragraph, f"the page never says to put the variables in {env_file}"
    taken = set(re.findall(r"\$\{(\w+):-", (DEPLOY / "docker-compose.yml").read_text()))
    assert taken >= {"SECRET_KEY_BASE", "EXESDB_ADMIN_TOKEN"}
    assert [name for name in sorted(taken) if f"`{name}`" not in paragraph] == []
    assert f">{env_file}" in stack  # the recipe writes it there
    ignored = subprocess.run(["git", "check-ignore", "-q", env_file], cwd=ROOT, check=False)
    assert ignored.returncode == 0, f"git would commit {env_file}"


@pytest.mark.parametrize("path", pages(), ids=lambda path: path.name)
def test_every_compose_command_names_the_compose_file(path: Path) -> None:
    """The repository has no compose file where compose looks by itself (the working folder and
    its parents), so every compose command on a page names it with -f, or it fails as written."""
    code = "\n".join(fenced(path.read_text(), "sh") + spans(path.read_text()))
    commands = re.findall(r"(?:docker|podman)[ -]compose \S.*", code)
    assert [c for c in commands if "-f deploy/docker-compose.yml" not in c] == []


def test_compose_gives_the_bridge_descriptors_above_its_connection_cap() -> None:
    """`ulimits: nofile` leaves room for EXESDB_HTTP_MAX_CONNECTIONS and everything else, and
    stays within the hard limit a rootless runtime has on a systemd host (524 288), past which
    runc refuses to start the container."""
    nofile = compose()["services"]["bridge"]["ulimits"]["nofile"]
    assert 4 * MAX_CONNECTIONS <= nofile["soft"] == nofile["hard"] <= 524_288


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
    """Prometheus scrapes the bridge's port, which compose publishes and EXESDB_EXTERNAL_URL names;
    the bridge exports to the collector's OTLP port."""
    services = compose()["services"]
    env = services["bridge"]["environment"]
    port = env["EXESDB_HTTP_ADDR"].rpartition(":")[2]
    assert f"127.0.0.1:{port}:{port}" in services["bridge"]["ports"]
    assert env["EXESDB_EXTERNAL_URL"] == f"http://localhost:{port}"
    published = [p for service in services.values() for p in service.get("ports", [])]
    assert all(p.startswith("127.0.0.1:") for p in published), "the demo's secrets are known"
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
    """Namespace, StatefulSet, its two Services (one address, one DNS name per pod), ConfigMap,
    Secret, ServiceMonitor, PDB and NetworkPolicy parse."""
    kinds = sorted(obj["kind"] for obj in kube_objects())
    assert kinds == sorted(
        [
            "ConfigMap",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "Service",
            "ServiceMonitor",
            "StatefulSet",
        ]
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


def configured_port() -> int:
    """The port of the ConfigMap's EXESDB_HTTP_ADDR: where the bridge listens in the pod."""
    return int(kube("ConfigMap")["data"]["EXESDB_HTTP_ADDR"].rpartition(":")[2])


def test_statefulset_probes_ask_the_configured_address() -> None:
    """Startup and liveness run the image's healthcheck, and readiness `healthcheck --ready`:
    exec probes, which ask wherever EXESDB_HTTP_ADDR says, with the web config's TLS, client
    certificate and basic auth (an httpGet probe has no client certificate, and would need the
    password in the pod spec)."""
    container = bridge_container()
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == HEALTHCHECK_COMMAND, probe
    readiness = container["readinessProbe"]
    assert "httpGet" not in readiness
    assert readiness["exec"]["command"] == READINESS_COMMAND
    assert build_parser().parse_args(READINESS_COMMAND[1:]).ready
    # The command's own --timeout (2 s by default) ends before the kubelet gives up on it.
    assert readiness["timeoutSeconds"] > 2
    assert configured_port() == int(DEFAULT_PORT)


def test_a_setting_in_the_secret_wins_over_the_configmap_as_the_deployment_page_says() -> None:
    """The page tells operators to put a Redis URL with a password in the Secret, where it wins
    over the ConfigMap's EXESDB_BUS: Kubernetes takes the last envFrom source giving a variable."""
    words = " ".join(page("deployment").split())
    assert "the Secret coming after the ConfigMap in the StatefulSet's `envFrom`" in words
    sources = [next(iter(source)) for source in bridge_container()["envFrom"]]
    assert sources == ["configMapRef", "secretRef"]


def test_statefulset_names_what_its_probe_command_needs_behind_a_web_config() -> None:
    """The StatefulSet's comment on its probes names every EXESDB_HEALTHCHECK_* setting, so an
    operator adding basic auth or client certificates does not leave the probes failing."""
    text = (K8S / "statefulset.yaml").read_text()
    needed = sorted(name for name in SETTINGS_VARIABLES if name.startswith("EXESDB_HEALTHCHECK_"))
    assert len(needed) == 4
    comments = " ".join(
        line.strip().lstrip("#") for line in text.splitlines() if line.strip().startswith("#")
    )
    assert [name for name in needed if name not in comments] == []


def test_each_pods_alert_links_use_its_dns_name_from_the_headless_service() -> None:
    """EXESDB_EXTERNAL_URL is the pod's name under the StatefulSet's headless Service and
    namespace, on the configured port: without it the links would name the bare pod name,
    which resolves nowhere else in the cluster."""
    env = {item["name"]: item for item in bridge_container()["env"]}
    assert env["EXESDB_NODE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    headless = kube("StatefulSet")["spec"]["serviceName"]
    assert kube("Service", headless)["spec"]["clusterIP"] == "None"
    assert env["EXESDB_EXTERNAL_URL"]["value"] == (
        f"http://$(EXESDB_NODE).{headless}.$(POD_NAMESPACE).svc:{configured_port()}"
    )
    expanded = env["EXESDB_EXTERNAL_URL"]["value"].replace("$(EXESDB_NODE)", "exesdb-bridge-0")
    expanded = expanded.replace("$(POD_NAMESPACE)", "exesdb")
    settings = Settings.model_validate({"EXESDB_EXTERNAL_URL": expanded})
    assert settings.external_url == (
        f"http://exesdb-bridge-0.{headless}.exesdb.svc:{configured_port()}"
    )


def test_statefulset_has_limits_and_runs_unprivileged_read_only() -> None:
    """Requests and limits; non-root, no privilege escalation, no capabilities, read-only root,
    no service-account token (the bridge never calls the Kubernetes API)."""
    pod = kube("StatefulSet")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    container = bridge_container()
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] not in (0, None)
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]


def test_statefulset_state_directory_is_its_one_writable_volume_kept_per_replica() -> None:
    """EXESDB_STATE_DIR is a mounted, writable volume, each replica's own claim (kept when the
    pod is replaced, scaled away or deleted), and no other path is written."""
    statefulset = kube("StatefulSet")["spec"]
    pod = statefulset["template"]["spec"]
    mounts = bridge_container()["volumeMounts"]
    assert [m["mountPath"] for m in mounts] == [kube("ConfigMap")["data"]["EXESDB_STATE_DIR"]]
    assert not mounts[0].get("readOnly", False)
    assert "volumes" not in pod  # not an emptyDir that a replaced pod loses
    claims = {t["metadata"]["name"]: t["spec"] for t in statefulset["volumeClaimTemplates"]}
    assert claims[mounts[0]["name"]]["accessModes"] == ["ReadWriteOnce"]
    assert claims[mounts[0]["name"]]["resources"]["requests"]["storage"]
    retention = statefulset["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]


def test_statefulset_names_each_replica_stably() -> None:
    """EXESDB_NODE is the pod's name, which a StatefulSet keeps across replacement; its
    serviceName is a headless Service selecting the pods; replicas start side by side and
    update one at a time."""
    statefulset = kube("StatefulSet")["spec"]
    node = next(e for e in bridge_container()["env"] if e["name"] == "EXESDB_NODE")
    assert node["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    headless = kube("Service", statefulset["serviceName"])["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["selector"].items() <= statefulset["template"]["metadata"]["labels"].items()
    assert statefulset["podManagementPolicy"] == "Parallel"
    assert statefulset["updateStrategy"]["type"] == "RollingUpdate"
    assert statefulset["updateStrategy"]["rollingUpdate"]["partition"] == 0


def test_statefulset_runs_this_version() -> None:
    """The StatefulSet's image tag is the project's version."""
    assert bridge_container()["image"].rpartition(":")[2] == __version__


def test_selectors_match_the_pods() -> None:
    """The Services, PodDisruptionBudget and ServiceMonitor select what the StatefulSet runs;
    the ServiceMonitor selects one Service, so each pod is scraped once."""
    pod_labels = kube("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    service = kube("Service", "exesdb-bridge")
    for selector in (
        service["spec"]["selector"],
        kube("Service", "exesdb-bridge-pods")["spec"]["selector"],
        kube("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        kube("StatefulSet")["spec"]["selector"]["matchLabels"],
        kube("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    monitor = kube("ServiceMonitor")
    monitored = [
        obj["metadata"]["name"]
        for obj in kube_objects()
        if obj["kind"] == "Service"
        and monitor["spec"]["selector"]["matchLabels"].items()
        <= obj["metadata"].get("labels", {}).items()
    ]
    assert monitored == ["exesdb-bridge"]
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    # The shipped rules select job="exesdb-bridge": the job label must come out as that.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "exesdb-bridge"
    pdb = kube("PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] < kube("StatefulSet")["spec"]["replicas"]


def test_the_network_policy_admits_only_the_http_port_and_leaves_outbound_open() -> None:
    """Inbound, the bridge pods take only their HTTP port (the one the Services and the
    ServiceMonitor use: scrapes and ingest; the probes are commands in the pod); outbound is not
    limited (webhooks, Alertmanager, Redis, OTLP)."""
    policy = kube("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    ports = {p["name"]: p["containerPort"] for p in bridge_container()["ports"]}
    assert ports["http"] == configured_port()
    for service in ("exesdb-bridge", "exesdb-bridge-pods"):
        assert {p["targetPort"] for p in kube("Service", service)["spec"]["ports"]} == {"http"}


def _kustomize(folder: Path) -> str:
    """What `kubectl kustomize folder` renders; the test fails when it cannot."""
    result = subprocess.run(
        [require_binary("kubectl"), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kustomize_builds() -> None:
    """`kubectl kustomize deploy/kubernetes` renders the objects and their Namespace."""
    rendered = _kustomize(K8S)
    objects = [doc for doc in yaml.safe_load_all(rendered) if doc]
    assert len(objects) == len(kube_objects())
    namespaces = [obj["metadata"]["name"] for obj in objects if obj["kind"] == "Namespace"]
    assert namespaces == ["exesdb"]
    placed = {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"}
    assert placed == {"exesdb"}
    [policy] = [obj for obj in objects if obj["kind"] == "NetworkPolicy"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]


def test_without_the_prometheus_operator_the_documented_edit_builds_the_rest(tmp_path) -> None:
    """The deployment page says what `kubectl apply -k` does on a cluster without the
    ServiceMonitor kind and which line of the kustomization to delete; deleted, the kustomization
    still builds every other object."""
    page = (ROOT / "docs" / "deployment.md").read_text()
    advice = "".join(part for part in page.split("\n\n") if "ServiceMonitor" in part)
    assert 'no matches for kind "ServiceMonitor"' in advice
    line = re.search(r"delete\s+the\s+line\s+`([^`]+)`", advice)
    assert line is not None, "the page names no line to delete"
    copy = tmp_path / "kubernetes"
    shutil.copytree(K8S, copy)
    kustomization = copy / "kustomization.yaml"
    text = kustomization.read_text()
    assert f"  {line.group(1)}\n" in text
    kustomization.write_text(text.replace(f"  {line.group(1)}\n", ""))
    rendered = _kustomize(copy)
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(rendered) if doc)
    assert kinds == sorted(obj["kind"] for obj in kube_objects() if obj["kind"] != "ServiceMonitor")


def test_the_deployment_page_names_where_the_configmap_sends_alerts_and_telemetry() -> None:
    """The page names the Alertmanager and OTLP collector the ConfigMap points at, and the rules
    that fire when they are not there, so an operator without them knows which lines to change."""
    text = doc_section(page("deployment"), "Kubernetes and systemd")
    [configmap] = [obj for obj in kube_objects() if obj["kind"] == "ConfigMap"]
    rules = load_yaml(DEPLOY / "prometheus/rules/exesdb-bridge.yml")
    alerts = {
        rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule
    }
    for variable, alert in [
        ("EXESDB_ALERTMANAGER_URL", "ExesdbAlertmanagerPostsFailing"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ExesdbOtlpExportFailing"),
    ]:
        assert f"`{configmap['data'][variable]}`" in text, variable
        assert f"`{variable}`" in text
        assert alert in alerts
        assert f"`{alert}`" in text


def test_the_documented_images_entry_runs_another_image(tmp_path) -> None:
    """The page's `images:` entry, added to a copy of the kustomization, replaces the
    StatefulSet's image with the one it names."""
    text = doc_section(page("deployment"), "Kubernetes and systemd")
    [entry] = [block for block in fenced(text, "yaml") if block.startswith("images:")]
    [image] = yaml.safe_load(entry)["images"]
    [statefulset] = [obj for obj in kube_objects() if obj["kind"] == "StatefulSet"]
    shipped = statefulset["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image["name"] == shipped.rpartition(":")[0]
    copy = tmp_path / "kubernetes"
    shutil.copytree(K8S, copy)
    with (copy / "kustomization.yaml").open("a") as kustomization:
        kustomization.write(entry)
    [rendered] = [
        doc for doc in yaml.safe_load_all(_kustomize(copy)) if doc and doc["kind"] == "StatefulSet"
    ]
    [container] = rendered["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{image['newName']}:{image['newTag']}"


def _with_the_documented_web_config(folder: Path) -> list[dict[str, Any]]:
    """The objects a copy of the kustomization in ``folder`` renders with the page's web config
    entries and patch added, and a placeholder for each file the Secret is made of."""
    text = doc_section(page("deployment"), "Kubernetes and systemd")
    [entries] = [block for block in fenced(text, "yaml") if block.startswith("secretGenerator:")]
    [patch] = [block for block in fenced(text, "yaml") if block.startswith("apiVersion: apps/")]
    shutil.copytree(K8S, folder)
    for generator in yaml.safe_load(entries)["secretGenerator"]:
        for name in generator["files"]:
            assert f"`{Path(name).name}`" in text, f"the page does not say what {name} holds"
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_text("placeholder\n")
    with (folder / "kustomization.yaml").open("a") as kustomization:
        kustomization.write(entries)
    [named] = yaml.safe_load(entries)["patches"]
    (folder / named["path"]).write_text(patch)
    return [doc for doc in yaml.safe_load_all(_kustomize(folder)) if doc]


def test_the_documented_web_config_patch_gives_the_bridge_and_its_probes_their_files(
    tmp_path,
) -> None:
    """The page's web config entries and patch build: the pods mount the Secret read-only,
    EXESDB_WEB_CONFIG_FILE and the probe's password file name files of it under that mount, every
    variable is a bridge setting and is defined after those it refers to (the patch's come
    first), and the page says to make the alert links https:// in the StatefulSet."""
    objects = _with_the_documented_web_config(tmp_path / "kubernetes")
    [secret] = [
        obj for obj in objects if obj["kind"] == "Secret" and "web" in obj["metadata"]["name"]
    ]
    [statefulset] = [obj for obj in objects if obj["kind"] == "StatefulSet"]
    pod = statefulset["spec"]["template"]["spec"]
    [container] = [c for c in pod["containers"] if c["name"] == "bridge"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    order = [item["name"] for item in container["env"]]
    [volume] = [v for v in pod["volumes"] if v.get("secret")]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    for variable in ("EXESDB_WEB_CONFIG_FILE", "EXESDB_HEALTHCHECK_PASSWORD_FILE"):
        path = Path(env[variable])
        assert path.parent == Path(mount["mountPath"]), variable
        assert path.name in secret["data"], variable
    assert env["EXESDB_HEALTHCHECK_USERNAME"]
    assert unknown_variables(env, expanded={"POD_NAMESPACE"}) == []
    for name, value in env.items():
        for referred in re.findall(r"\$\((\w+)\)", value or ""):
            assert order.index(referred) < order.index(name), f"{name} before {referred}"
    said = " ".join(doc_section(page("deployment"), "Kubernetes and systemd").split())
    assert "stays in `statefulset.yaml`: change its `http://` to `https://` there" in said
    # 0440: the pod's fsGroup reads the key, which a 0644 default would let anyone read.
    assert volume["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]


def test_the_documented_web_config_patch_has_prometheus_scrape_over_https_as_a_user(
    tmp_path,
) -> None:
    """With the page's patch the ServiceMonitor scrapes the same port and path over https,
    trusting a certificate of the Secret and logging in with a user and password of it."""
    objects = _with_the_documented_web_config(tmp_path / "kubernetes")
    [secret] = [
        obj for obj in objects if obj["kind"] == "Secret" and "web" in obj["metadata"]["name"]
    ]
    [monitor] = [obj for obj in objects if obj["kind"] == "ServiceMonitor"]
    [endpoint] = monitor["spec"]["endpoints"]
    [shipped] = kube("ServiceMonitor")["spec"]["endpoints"]
    assert {key: endpoint[key] for key in shipped} == shipped
    assert endpoint["scheme"] == "https"
    selectors = [
        endpoint["tlsConfig"]["ca"]["secret"],
        endpoint["basicAuth"]["username"]["secret"],
        endpoint["basicAuth"]["password"]["secret"],
    ]
    for selector in selectors:
        assert selector["name"] == secret["metadata"]["name"]
        assert selector["key"] in secret["data"]
    assert endpoint["tlsConfig"]["serverName"]


# -- Docker and systemd --


def dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in (raw.strip() for raw in text.splitlines())
        if line and not line.startswith("#")
    ]


def final_stage() -> list[tuple[str, str]]:
    """The instructions after the last FROM: what the shipped image is made of."""
    instructions = dockerfile()
    last = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last + 1 :]


def dockerfile_env() -> dict[str, str]:
    return dict(
        pair.split("=", 1) for op, arg in final_stage() if op == "ENV" for pair in shlex.split(arg)
    )


def test_dockerfile_is_slim_non_root_with_a_healthcheck() -> None:
    """A slim Python base, a non-root user, `exesdb-bridge healthcheck`, the default port."""
    instructions = dockerfile()
    arguments = dict(arg.split("=", 1) for op, arg in instructions if op == "ARG" and "=" in arg)
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: arguments[m[1]], arg.split()[0])
        for op, arg in instructions
        if op == "FROM"
    ]
    assert len(bases) == 2  # a build stage, and the image
    assert all(re.match(r"python:3\.1[1-9]-slim$", base) for base in bases), bases
    users = [arg for op, arg in instructions if op == "USER"]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert [op for op, _ in instructions].index("USER") > max(
        i for i, (op, _) in enumerate(instructions) if op == "RUN"
    )
    healthchecks = [arg for op, arg in instructions if op == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert json.loads(healthchecks[0].partition(" CMD ")[2]) == HEALTHCHECK_COMMAND
    assert [arg for op, arg in instructions if op == "EXPOSE"] == [DEFAULT_PORT]
    for op, arg in instructions:
        if op == "COPY" and "--from" not in arg:
            for source in arg.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_every_probe_waits_longer_than_the_health_check_s_own_timeout() -> None:
    """The image's HEALTHCHECK, compose's and each Kubernetes probe give the command more than its
    own --timeout, so a probe that fails ends with its line saying why, not cut off without one."""
    [healthcheck] = [arg for op, arg in final_stage() if op == "HEALTHCHECK"]
    options = dict(re.findall(r"--([\w-]+)=(\S+)", healthcheck.partition(" CMD ")[0]))
    waits = {
        "HEALTHCHECK": options["timeout"],
        "compose": compose()["services"]["bridge"]["healthcheck"]["timeout"],
        **{
            probe: f"{bridge_container()[probe]['timeoutSeconds']}s"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe")
        },
    }
    assert {
        where: wait
        for where, wait in waits.items()
        if float(wait.removesuffix("s")) <= DEFAULT_TIMEOUT
    } == {}


def test_dockerfile_builds_the_bridge_with_the_backend_its_dependency_layer_installs() -> None:
    """The build stage's dependency layer installs the build backend pyproject.toml's
    build-system requires (the list its command prints, written where the next command reads
    it), and each `pip install .` after it builds with that backend (--no-build-isolation): a
    rebuild after a code change fetches no setuptools into a throwaway environment."""
    instructions = dockerfile()
    last = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    commands = [
        shlex.split(command)
        for op, arg in instructions[:last]
        if op == "RUN"
        for command in arg.split(" && ")
    ]
    [listing] = [command for command in commands if command[:2] == ["python3", "-c"]]
    listed = subprocess.run(
        [sys.executable, "-c", listing[2]], cwd=ROOT, capture_output=True, text=True, check=True
    )
    with (ROOT / "pyproject.toml").open("rb") as file:
        requires = tomllib.load(file)["build-system"]["requires"]
    assert listed.stdout.splitlines() == requires
    assert listing[3:] == [">/tmp/build-requires.txt"]
    installs = [command for command in commands if command[1:2] == ["install"]]
    assert "--requirement" in installs[0]
    assert installs[0][installs[0].index("--requirement") + 1] == "/tmp/build-requires.txt"
    builds = [command for command in installs if command[-1] == "."]
    assert len(builds) == 2  # the dependencies' layer, then the code's
    assert all("--no-build-isolation" in command for command in builds)
    assert commands.index(installs[0]) < commands.index(builds[0])


def test_dockerfile_ships_only_the_installed_bridge() -> None:
    """The image copies the build stage's virtualenv and installs nothing itself."""
    final = final_stage()
    assert [arg for op, arg in final if op == "COPY"] == [
        "--from=build /opt/exesdb-bridge /opt/exesdb-bridge"
    ]
    assert not [arg for op, arg in final if op == "RUN" and "pip" in arg]
    assert dockerfile_env()["PATH"].startswith("/opt/exesdb-bridge/bin:")


def test_dockerfile_installs_the_dependencies_before_the_code_is_copied() -> None:
    """The build stage's first install has only the project's files (pyproject.toml, and the
    README and LICENSE its metadata carries) and installs the dependencies: a code change
    rebuilds the layers after it, not theirs."""
    instructions = dockerfile()
    build_stage = instructions[: max(i for i, (op, _) in enumerate(instructions) if op == "FROM")]
    first_install = next(
        i for i, (op, arg) in enumerate(build_stage) if op == "RUN" and "pip install" in arg
    )
    copied_before = [
        source
        for op, arg in build_stage[:first_install]
        if op == "COPY"
        for source in arg.split()[:-1]
    ]
    assert copied_before == ["pyproject.toml", "README.md", "LICENSE"]
    assert "--no-deps" not in build_stage[first_install][1]


def test_dockerfile_state_volume_is_the_one_writable_place() -> None:
    """State and temporary files go to the volume, so a read-only root filesystem works."""
    env = dockerfile_env()
    assert env["EXESDB_STATE_DIR"] == env["TMPDIR"] == STATE_DIR
    assert [arg for op, arg in final_stage() if op == "VOLUME"] == [f'["{STATE_DIR}"]']


def test_dockerfile_labels_name_the_version_and_source() -> None:
    """OCI labels: title, version (the project's), revision (the build's), source, licenses."""
    labels = dict(
        pair.split("=", 1)
        for op, arg in final_stage()
        if op == "LABEL"
        for pair in shlex.split(arg)
    )
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.title"] == "exesdb-bridge"
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    # The commit the build names (--build-arg REVISION), which exesdb_build_info shows too.
    assert labels["org.opencontainers.image.revision"] == "${REVISION}"
    assert dockerfile_env()["EXESDB_REVISION"] == "${REVISION}"


def test_shutdown_fits_inside_every_stop_timeout() -> None:
    """SIGTERM stops the bridge, which drains within EXESDB_SHUTDOWN_TIMEOUT_MS, before a kill:
    in the image, compose, Kubernetes and the systemd unit."""
    assert [arg for op, arg in final_stage() if op == "STOPSIGNAL"] == ["SIGTERM"]
    image_ms = int(dockerfile_env()["EXESDB_SHUTDOWN_TIMEOUT_MS"])
    assert image_ms < ENGINE_STOP_TIMEOUT_S * 1000
    bridge = compose()["services"]["bridge"]
    grace = int(bridge["stop_grace_period"].removesuffix("s"))
    assert int(bridge["environment"]["EXESDB_SHUTDOWN_TIMEOUT_MS"]) < grace * 1000
    pod = kube("StatefulSet")["spec"]["template"]["spec"]
    kube_ms = int(kube("ConfigMap")["data"]["EXESDB_SHUTDOWN_TIMEOUT_MS"])
    assert kube_ms < pod["terminationGracePeriodSeconds"] * 1000
    unit = systemd_unit()
    assert unit["KillSignal"] == ["SIGTERM"]
    unit_ms = Settings.model_fields["shutdown_timeout_ms"].default  # the unit leaves it
    assert not [e for e in unit["Environment"] if e.startswith("EXESDB_SHUTDOWN_TIMEOUT_MS=")]
    assert unit_ms < int(unit["TimeoutStopSec"][0].removesuffix("s")) * 1000


def test_every_documented_docker_run_names_the_node() -> None:
    """The image's `docker run` examples (the deployment page's, the Dockerfile's header) set
    EXESDB_NODE, as compose and the StatefulSet do: left to the container's host name, its id,
    every new container is another node, leaving its predecessor's alerts on the volume open."""
    text = page("deployment").replace("\\\n", " ")
    runs = [
        line
        for block in fenced(text, "sh")
        for line in block.splitlines()
        if line.startswith("docker run ")
    ]
    header = [line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line[:1] == "#"]
    runs += [line.lstrip("# ") for line in header if line.lstrip("# ").startswith("docker run ")]
    assert len(runs) == 2, runs
    for run in runs:
        words = shlex.split(run)
        settings = [value for flag, value in pairwise(words) if flag == "-e"]
        assert any(setting.startswith("EXESDB_NODE=") for setting in settings), run


def test_dockerfile_sets_only_real_bridge_variables() -> None:
    """ENV names bridge settings, Python's own switches, PATH and TMPDIR only."""
    names = [
        n for n in dockerfile_env() if not n.startswith("PYTHON") and n not in {"PATH", "TMPDIR"}
    ]
    assert names
    assert unknown_variables(names) == []


def test_dockerignore_keeps_the_context_small() -> None:
    """The BuildKit ignore file next to the Dockerfile excludes everything but the sources."""
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("**")] == "**"
    assert {"!bridge/**", "!collectors/**", "!pyproject.toml", "!LICENSE"} <= set(ignore)


def systemd_unit() -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd/exesdb-bridge.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def test_systemd_unit() -> None:
    """The unit runs `exesdb-bridge run` unprivileged, with state, settings and a descriptor
    limit well above the HTTP connection cap."""
    unit = systemd_unit()
    assert unit["ExecStart"][0].endswith("exesdb-bridge run")
    assert unit["DynamicUser"] == ["yes"]
    assert unit["StateDirectory"] == ["exesdb-bridge"]
    assert unit["RestartPreventExitStatus"] == ["2"]  # bad configuration: do not loop
    names = [value.split("=")[0] for value in unit["Environment"]]
    assert unknown_variables(names) == []
    assert "EXESDB_STATE_DIR=/var/lib/exesdb-bridge" in unit["Environment"]
    assert int(unit["LimitNOFILE"][0]) >= 4 * MAX_CONNECTIONS  # room beside the HTTP cap


def test_systemd_analyze_finds_nothing_wrong_with_the_unit(tmp_path) -> None:
    """`systemd-analyze verify` reports no unknown key or bad value (only that the bridge is not
    installed on this machine), and `systemd-analyze security` rates its exposure 2.0 or less."""
    analyze = require_binary("systemd-analyze")
    unit = tmp_path / "exesdb-bridge.service"
    unit.write_text((DEPLOY / "systemd/exesdb-bridge.service").read_text())
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    not_installed = f"Command {systemd_unit()['ExecStart'][0].split()[0]} is not executable"
    problems = [
        line
        for line in (verified.stdout + verified.stderr).splitlines()
        if line.strip() and not_installed not in line
    ]
    assert problems == []
    rated = subprocess.run(
        [analyze, "security", "--offline=true", f"--threshold={MAX_SYSTEMD_EXPOSURE}", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rated.returncode == 0, rated.stdout.splitlines()[-1:]


def test_the_documented_drop_in_gives_the_dynamic_user_the_key_group(tmp_path) -> None:
    """docs/deployment.md's drop-in for keys only root may read passes `systemd-analyze verify`
    beside the unit and adds the group its commands give the files."""
    analyze = require_binary("systemd-analyze")
    text = doc_section(page("deployment"), "Kubernetes and systemd")
    [commands] = [block for block in fenced(text, "sh") if "groupadd" in block]
    [drop_in] = fenced(text, "ini")
    group = re.search(r"^groupadd --system (\S+)$", commands, re.M)
    assert group, commands
    assert re.search(rf"^chgrp {group[1]} ", commands, re.M)
    assert f"SupplementaryGroups={group[1]}" in drop_in.splitlines()
    unit = tmp_path / "exesdb-bridge.service"
    unit.write_text((DEPLOY / "systemd/exesdb-bridge.service").read_text())
    (tmp_path / "exesdb-bridge.service.d").mkdir()
    (tmp_path / "exesdb-bridge.service.d/keys.conf").write_text(drop_in)
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    not_installed = f"Command {systemd_unit()['ExecStart'][0].split()[0]} is not executable"
    problems = [
        line
        for line in (verified.stdout + verified.stderr).splitlines()
        if line.strip() and not_installed not in line
    ]
    assert problems == []


def test_the_deployment_page_installs_the_unit_where_it_looks(tmp_path: Path) -> None:
    """docs/deployment.md's install steps put the bridge in the virtualenv the unit's ExecStart
    runs, the unit where systemd finds it, and the settings in its EnvironmentFile, mode 0600,
    holding only settings the bridge takes (run here under a stand-in root)."""
    text = doc_section(page("deployment"), "Kubernetes and systemd")
    [block] = [block for block in fenced(text, "sh") if "systemctl enable" in block]
    lines = block.replace("\\\n", " ").splitlines()
    unit = systemd_unit()
    venv = str(Path(unit["ExecStart"][0].split()[0]).parent.parent)
    env_file = unit["EnvironmentFile"][0].removeprefix("-")
    assert f"python3 -m venv {venv}" in lines
    assert f"{venv}/bin/pip install ." in lines
    assert "cp deploy/systemd/exesdb-bridge.service /etc/systemd/system/" in lines
    assert (ROOT / "deploy/systemd/exesdb-bridge.service").is_file()
    assert "systemctl enable --now exesdb-bridge" in lines
    # The lines that write the settings, run with /etc under a folder of the test's own.
    writes = [line for line in lines if str(Path(env_file).parent) in line]
    assert len(writes) == 3, writes
    script = "\n".join(line.replace("/etc/", f"{tmp_path}/etc/") for line in writes)
    subprocess.run(["bash", "-euc", script], check=True, timeout=30)
    written = tmp_path / env_file.lstrip("/")
    assert written.stat().st_mode & 0o777 == 0o600
    settings = dict(line.split("=", 1) for line in written.read_text().splitlines())
    assert unknown_variables(settings) == []
    assert Settings.model_validate(settings).secret_key_base is not None


def test_systemd_unit_installs_the_bridge_from_its_sources() -> None:
    """The unit's install line installs a checkout (as the image does), never a name from PyPI."""
    text = (DEPLOY / "systemd/exesdb-bridge.service").read_text()
    [install] = [line for line in text.splitlines() if line.startswith("# Install:")]
    target = install.split("pip install", 1)[1].split()[0]
    assert target.startswith(("/", ".", "~")), f"{target!r} would be looked up on PyPI"


@pytest.mark.parametrize(
    "path", sorted(DEPLOY.rglob("*.y*ml")), ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_every_yaml_file_parses(path) -> None:
    """Every YAML file under deploy/ is valid YAML."""
    assert load_all_yaml(path)


def test_the_shipped_secret_holds_no_value_that_would_work_if_applied_unchanged() -> None:
    """The Secret ships empty: applied unedited, the admin API stays off and no known key signs
    anything (a "replace-me" token would open alert acknowledgements to anyone)."""
    secret = kube("Secret")["stringData"]
    assert secret
    assert all(value == "" for value in secret.values())
    settings = Settings.model_validate({**kube("ConfigMap")["data"], **secret})
    assert settings.admin_token is None or not settings.admin_token.get_secret_value()
