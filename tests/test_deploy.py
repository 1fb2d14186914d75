"""The deployment artefacts: Dockerfile, Kubernetes manifests, Grafana dashboard, alert rules.

Nothing here needs a cluster, Docker or the network. Manifests are checked file by file against
the Kubernetes OpenAPI schemas (``kubernetes-validate``, strict: unknown fields fail); the
Prometheus Operator kinds, which it has no schema for, and the kustomizations get structural
checks. The dashboard's and the rules' PromQL may name only series that ``gateway.metrics``
exports (with their declared labels), plus an explicit allow-list of kube-state-metrics and
Prometheus series. When ``kubectl`` is installed, the overlays are also rendered with its
built-in kustomize (offline) and the rendered objects validated.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from gateway.cli import _parser
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store import is_memory

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
CHECK_SCRIPT = DEPLOY / "check-dockerfile-install.sh"
DASHBOARD = DEPLOY / "grafana" / "dlr-gateway-dashboard.json"
RULES = DEPLOY / "prometheus" / "dlr-gateway-rules.yaml"
OVERLAYS = DEPLOY / "overlays"

#: The Kubernetes version the manifests must be valid for (kubernetes-validate ships its schemas).
K8S_VERSION = "1.33"

MONITORING_API = "monitoring.coreos.com/v1"
CRD_KINDS = {"ServiceMonitor": MONITORING_API, "PrometheusRule": MONITORING_API}
KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"

APP_LABELS = {"app.kubernetes.io/name": "dlr-gateway"}
UID = 10001
PORT = 8080
#: The image's CMD; the sandbox overlay adds --sandbox after `serve`.
SERVE = ["dlr-gateway", "serve", "--host", "0.0.0.0", "--port", str(PORT)]  # noqa: S104
#: The production overlay's migration Job.
MIGRATE = ["dlr-gateway", "db", "upgrade"]
MIGRATE_JOB = "dlr-gateway-migrate"
POSTGRES_PORT = 5432

#: Labels the Prometheus Operator adds to every scraped gateway series.
TARGET_LABELS = frozenset(
    {"job", "namespace", "pod", "instance", "service", "endpoint", "container"}
)
#: Series from outside the gateway that PromQL here may use, with the labels it may use on them.
EXTERNAL_SERIES: dict[str, frozenset[str]] = {
    # Prometheus itself.
    "up": TARGET_LABELS,
    # kube-state-metrics.
    "kube_pod_status_ready": frozenset({"namespace", "pod", "uid", "condition"}),
    "kube_deployment_spec_replicas": frozenset({"namespace", "deployment"}),
}

REQUIRED_ALERTS = {
    "DlrReportLatencyHigh",
    "DlrUpstreamErrorRatioHigh",
    # Readiness does not follow the carrier or the database (every pod shares them): these
    # are where their trouble shows.
    "DlrUpstreamCircuitOpen",
    "DlrStateStoreUnavailable",
    "DlrGeocoderFailures",
    "DlrPodsNotReady",
}


# --- loading -----------------------------------------------------------------------------------


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


def _documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _kustomizations() -> list[Path]:
    return sorted(DEPLOY.rglob("kustomization.yaml"))


def _patch_files() -> set[Path]:
    """Files that kustomizations use as patches: partial objects, not validated alone."""
    found = set()
    for k in _kustomizations():
        for entry in _documents(k)[0].get("patches") or []:
            if "path" in entry:
                found.add((k.parent / entry["path"]).resolve())
    return found


def _manifests() -> list[tuple[Path, int, dict[str, Any]]]:
    """Every whole Kubernetes object under deploy/: not kustomizations, not patches."""
    patches = _patch_files()
    found = []
    for path in _yaml_files():
        if path.name == "kustomization.yaml" or path.resolve() in patches:
            continue
        for i, doc in enumerate(_documents(path)):
            found.append((path, i, doc))
    return found


def _builtin_manifests() -> list[tuple[Path, int, dict[str, Any]]]:
    return [m for m in _manifests() if m[2].get("kind") not in CRD_KINDS]


def _objects(kind: str, directory: Path = DEPLOY / "base") -> list[dict[str, Any]]:
    return [
        doc
        for path, _, doc in _manifests()
        if doc.get("kind") == kind and path.is_relative_to(directory)
    ]


def _one(kind: str, directory: Path = DEPLOY / "base") -> dict[str, Any]:
    (found,) = _objects(kind, directory)
    return found


def _manifest_id(m: tuple[Path, int, dict[str, Any]]) -> str:
    path, i, doc = m
    return f"{path.relative_to(DEPLOY)}#{i}:{doc.get('kind')}"


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


# --- the gateway's metrics ---------------------------------------------------------------------

_SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def _exported_series() -> dict[str, tuple[str, frozenset[str] | None]]:
    """Series name -> (its family, the labels it carries; None: any, for Info's labels)."""
    metrics = Metrics()
    families = {family.name: family.type for family in metrics.registry.collect()}
    # Label names are declared on the metric objects; the registry shows them only on samples.
    declared = {
        m._name: frozenset(m._labelnames)
        for m in vars(metrics).values()
        if isinstance(m, MetricWrapperBase)
    }
    series: dict[str, tuple[str, frozenset[str] | None]] = {}
    for name, kind in families.items():
        for suffix in _SERIES_SUFFIXES[kind]:
            labels = None if kind == "info" else declared[name]
            if suffix == "_bucket" and labels is not None:
                labels = labels | {"le"}
            series[name + suffix] = (name, labels)
    for family in metrics.registry.collect():
        for sample in family.samples:
            series.setdefault(sample.name, (family.name, None))
    return series


EXPORTED = _exported_series()
#: Each exported histogram's ``_bucket`` series -> its bucket bounds (the ``le`` values).
BUCKETS = {
    f"{m._name}_bucket": frozenset(m._upper_bounds)
    for m in vars(Metrics()).values()
    if isinstance(m, MetricWrapperBase) and m._type == "histogram"
}
_LE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{[^}]*\ble\s*=\s*\"([^\"]*)\"")


# --- a small PromQL reader: enough to find series names and label names ------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_IDENT = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def _promql(expr: str) -> tuple[list[tuple[str, set[str]]], set[str]]:
    """The selectors of ``expr`` as (series, matcher labels), and its grouping labels."""
    text = _STRING.sub('""', expr)
    grouping = {label.strip() for g in _GROUPING.findall(text) for label in g.split(",")}
    text = _RANGE.sub("", _GROUPING.sub(" ", text))
    selectors: list[tuple[str, set[str]]] = []
    for name, matchers in _SELECTOR.findall(text):
        assert name, f"selector without a metric name in {expr!r}"
        selectors.append((name, set(_MATCHER.findall(matchers))))
    text = _SELECTOR.sub(lambda m: f" {m.group(1)} ", text)
    named = {name for name, _ in selectors}
    for name in _IDENT.findall(text):
        if name not in _KEYWORDS and name not in named:
            selectors.append((name, set()))
            named.add(name)
    return selectors, grouping - {""}


def _check_promql(expr: str, where: str) -> set[str]:
    """Assert that ``expr`` uses only known series and labels; the series it uses."""
    selectors, grouping = _promql(expr)
    assert selectors, f"{where}: no series in {expr!r}"
    known_labels = {"le"} | TARGET_LABELS
    free_labels = False
    for name, labels in selectors:
        if name in EXPORTED:
            declared = EXPORTED[name][1]
            if declared is None:
                free_labels = True
                continue
            allowed = declared | TARGET_LABELS
        else:
            assert not name.startswith("dlr_"), (
                f"{where}: {name} is not exported by gateway/metrics.py "
                f"(exported: {sorted(EXPORTED)})"
            )
            assert name in EXTERNAL_SERIES, f"{where}: {name} is not in the allow-list"
            allowed = EXTERNAL_SERIES[name]
        assert labels <= allowed, f"{where}: {name} has no label(s) {sorted(labels - allowed)}"
        known_labels |= allowed
    assert free_labels or grouping <= known_labels, (
        f"{where}: grouping by unknown label(s) {sorted(grouping - known_labels)} in {expr!r}"
    )
    for name, bound in _LE.findall(expr):
        assert float(bound) in BUCKETS.get(name, ()), f"{where}: {name} has no bucket le={bound}"
    return {name for name, _ in selectors}


def test_promql_reader() -> None:
    selectors, grouping = _promql(
        "histogram_quantile(0.99, sum by (le, result) (rate(dlr_report_duration_seconds_bucket"
        '{namespace=~"$namespace", result!="a{b}"}[$__rate_interval]))) > 1e3 '
        "and on (namespace) up == 0"
    )
    assert selectors == [
        ("dlr_report_duration_seconds_bucket", {"namespace", "result"}),
        ("up", set()),
    ]
    assert grouping == {"le", "result", "namespace"}
    with pytest.raises(AssertionError, match="not exported"):
        _check_promql("rate(dlr_no_such_metric_total[5m])", "t")
    with pytest.raises(AssertionError, match="allow-list"):
        _check_promql("node_load1", "t")
    with pytest.raises(AssertionError, match="no label"):
        _check_promql('dlr_reports_total{operation="x"}', "t")
    with pytest.raises(AssertionError, match="grouping"):
        _check_promql("sum by (reason) (dlr_reports_total)", "t")
    with pytest.raises(AssertionError, match="no bucket"):
        _check_promql('dlr_report_duration_seconds_bucket{le="3"}', "t")


# --- YAML and kustomize ------------------------------------------------------------------------


def test_every_yaml_document_parses_as_an_object() -> None:
    files = _yaml_files()
    assert files
    for path in files:
        docs = _documents(path)
        assert docs, f"{path} is empty"
        for doc in docs:
            assert isinstance(doc, dict), path
            assert doc.get("apiVersion"), path
            assert doc.get("kind"), path


def _validate(obj: dict[str, Any], where: str) -> None:
    """Validate against the Kubernetes schema, strict; fail with a one-line message."""
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{where}: {obj['kind']} {path}: {exc.message}", pytrace=False)


@pytest.mark.parametrize("manifest", _builtin_manifests(), ids=_manifest_id)
def test_manifest_is_valid_kubernetes(manifest: tuple[Path, int, dict[str, Any]]) -> None:
    path, _, doc = manifest
    _validate(doc, str(path.relative_to(ROOT)))


def test_custom_resources_have_the_operator_api() -> None:
    kinds = {}
    for path, _, doc in _manifests():
        if doc["kind"] in CRD_KINDS:
            assert doc["apiVersion"] == CRD_KINDS[doc["kind"]], path
            assert doc["metadata"]["name"] == "dlr-gateway", path
            kinds[doc["kind"]] = path.relative_to(DEPLOY).as_posix()
    assert kinds == {
        "ServiceMonitor": "base/servicemonitor.yaml",
        "PrometheusRule": "prometheus/dlr-gateway-rules.yaml",
    }


@pytest.mark.parametrize("kustomization", _kustomizations(), ids=lambda p: str(p.parent.name))
def test_kustomization_references_exist(kustomization: Path) -> None:
    (doc,) = _documents(kustomization)
    assert doc["apiVersion"] == KUSTOMIZE_API
    assert doc["kind"] == "Kustomization"
    here = kustomization.parent
    for resource in doc.get("resources") or []:
        target = (here / resource).resolve()
        assert target.exists(), f"{kustomization}: resource {resource} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").is_file(), f"{resource}: no kustomization"
        else:
            # Kustomize's default load restrictor: files only from the kustomization's own tree.
            assert target.is_relative_to(here.resolve()), f"{resource} is outside {here}"
    for patch in doc.get("patches") or []:
        assert set(patch) <= {"path", "patch", "target", "options"}, patch
        if "path" in patch:
            target = (here / patch["path"]).resolve()
            assert target.is_file(), f"{kustomization}: patch {patch['path']} does not exist"
            assert target.is_relative_to(here.resolve()), patch["path"]


def test_every_manifest_file_is_used_by_a_kustomization() -> None:
    used = set(_patch_files())
    for k in _kustomizations():
        for resource in _documents(k)[0].get("resources") or []:
            used.add((k.parent / resource).resolve())
    for path in _yaml_files():
        if path.name != "kustomization.yaml":
            assert path.resolve() in used, f"{path.relative_to(ROOT)} is in no kustomization"


def test_patches_target_objects_of_the_base() -> None:
    base = {(d["kind"], d["metadata"]["name"]) for _, _, d in _manifests()}
    for path in _patch_files():
        for doc in _documents(path):
            assert (doc["kind"], doc["metadata"]["name"]) in base, path
    for k in _kustomizations():
        for patch in _documents(k)[0].get("patches") or []:
            if "target" in patch:
                target = (patch["target"]["kind"], patch["target"]["name"])
                assert target in base, f"{k}: {target}"


# --- the workload ------------------------------------------------------------------------------


def test_deployment_probes_ports_and_shutdown() -> None:
    deployment = _one("Deployment")
    assert deployment["metadata"]["name"] == "dlr-gateway"
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]
    assert APP_LABELS.items() <= deployment["spec"]["selector"]["matchLabels"].items()
    assert APP_LABELS.items() <= pod["metadata"]["labels"].items()
    container = _container(deployment)
    assert container["ports"] == [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
    probes = {
        kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
        for kind in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    assert probes == {
        "readinessProbe": ("/readyz", "http"),
        "livenessProbe": ("/healthz", "http"),
        "startupProbe": ("/healthz", "http"),
    }
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][kind].keys()
    # The image's CMD serves on 8080; the base does not override it.
    assert "command" not in container
    assert "args" not in container

    # SIGTERM comes after preStop; then in-flight requests get GATEWAY_SHUTDOWN_GRACE.
    assert container["lifecycle"]["preStop"]["exec"]["command"][:2] == ["sh", "-c"]
    (sleep,) = re.findall(r"sleep (\d+)", container["lifecycle"]["preStop"]["exec"]["command"][2])
    grace = _settings_from_manifests().shutdown_grace
    assert pod["spec"]["terminationGracePeriodSeconds"] > int(sleep) + grace


def test_deployment_security() -> None:
    deployment = _one("Deployment")
    spec = deployment["spec"]["template"]["spec"]
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == UID
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _container(deployment)
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == UID
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    # Read-only root: /tmp and GATEWAY_DATA_DIR (the embedded SQLite file) are emptyDirs.
    data_dir = _settings_from_manifests().data_dir
    for path in ("/tmp", data_dir):
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        assert "emptyDir" in volume
    spread = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
    assert spread == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in spec["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"] == APP_LABELS


def test_selectors_and_references_agree() -> None:
    deployment = _one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = _container(deployment)

    service = _one("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("http", 80, "http")

    hpa = _one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}

    pdb = _one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 2

    policy = _one("NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports <= {"http", PORT}
    egress_ports = {
        (p["port"], p["protocol"]) for r in policy["spec"]["egress"] for p in r["ports"]
    }
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (443, "TCP")}

    monitor = _one("ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == (port["name"], "/metrics")

    account = _one("ServiceAccount")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )

    sources = [
        (kind, ref["name"]) for source in container["envFrom"] for kind, ref in source.items()
    ]
    assert sources == [("configMapRef", "dlr-gateway"), ("secretRef", "dlr-gateway")]
    assert _one("ConfigMap")["metadata"]["name"] == "dlr-gateway"
    assert _one("Secret", OVERLAYS / "sandbox")["metadata"]["name"] == "dlr-gateway"


# --- configuration -----------------------------------------------------------------------------

SECRET_SETTINGS = {
    "BANDWIDTH_ACCOUNT_ID",
    "BANDWIDTH_USERNAME",
    "BANDWIDTH_PASSWORD",
    "GATEWAY_ADMIN_KEYS",
    "GATEWAY_DEVICE_JWT_SECRET",
    "GATEWAY_DATABASE_URL",
}


def _setting_names() -> set[str]:
    """Every environment variable gateway/settings/ reads (its upper-case string constants)."""
    trees = [ast.parse(path.read_text()) for path in (ROOT / "gateway" / "settings").glob("*.py")]
    return {
        node.value
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"(BANDWIDTH|GATEWAY|GEOCODER?)_[A-Z0-9_]+|GEOCODER", node.value)
    }


def _env(kind: str, directory: Path) -> dict[str, str]:
    obj = _one(kind, directory)
    data = {**(obj.get("data") or {}), **(obj.get("stringData") or {})}
    assert all(isinstance(v, str) for v in data.values()), f"{kind}: values must be strings"
    return data


def _settings_from_manifests() -> Settings:
    env = {**_env("ConfigMap", DEPLOY / "base"), **_env("Secret", OVERLAYS / "sandbox")}
    return Settings.from_environ(env, env_file=None)


def test_config_and_secret_hold_only_known_settings() -> None:
    names = _setting_names()
    assert names >= SECRET_SETTINGS
    config = _env("ConfigMap", DEPLOY / "base")
    secret = _env("Secret", OVERLAYS / "sandbox")
    assert config.keys() <= names, f"unknown settings: {sorted(config.keys() - names)}"
    assert secret.keys() == SECRET_SETTINGS
    assert not config.keys() & SECRET_SETTINGS, "secrets belong in the Secret"
    for path in _patch_files():
        for doc in _documents(path):
            if doc["kind"] == "ConfigMap":
                assert doc["data"].keys() <= names, path
    # The values parse as the gateway reads them.
    settings = _settings_from_manifests()
    assert settings.bandwidth_base_url == config["BANDWIDTH_BASE_URL"]
    assert settings.geocoder == "offline"
    # DlrGeocoderFailures counts provider calls slower than 2.5 s as timeouts.
    assert 2.5 < settings.geocode_timeout <= 5.0
    # The database URL (it holds a password) is the Secret's; its example is a PostgreSQL one.
    assert settings.database_url.startswith("postgresql://")
    assert settings.data_dir.startswith("/")


def test_base_ships_no_secret() -> None:
    assert not _objects("Secret", DEPLOY / "base")
    assert not _objects("Secret", OVERLAYS / "production")


# --- overlays ----------------------------------------------------------------------------------


def _kustomization(overlay: str) -> dict[str, Any]:
    (doc,) = _documents(OVERLAYS / overlay / "kustomization.yaml")
    return doc


def test_sandbox_overlay_runs_one_sandbox_pod() -> None:
    k = _kustomization("sandbox")
    assert "../../base" in k["resources"]
    assert "secret.example.yaml" in k["resources"]
    assert k["replicas"] == [{"name": "dlr-gateway", "count": 1}]
    patches = {p["path"]: _documents(OVERLAYS / "sandbox" / p["path"])[0] for p in k["patches"]}
    (deployment,) = [d for d in patches.values() if d["kind"] == "Deployment"]
    command = _container(deployment)["command"]
    assert command == [*SERVE[:2], "--sandbox", *SERVE[2:]]
    # State in memory like the simulator's, whatever the Secret says; so no migration Job.
    env = {e["name"]: e for e in _container(deployment)["env"]}
    assert is_memory(env["GATEWAY_DATABASE_URL"]["value"])
    assert not _objects("Job", OVERLAYS / "sandbox")
    (hpa,) = [d for d in patches.values() if d["kind"] == "HorizontalPodAutoscaler"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 1)


def test_production_overlay_pins_the_image_and_has_the_rules() -> None:
    k = _kustomization("production")
    assert {"../../base", "../../prometheus"} <= set(k["resources"])
    assert not any("secret" in r for r in k["resources"])
    (image,) = k["images"]
    assert image["name"] == _container(_one("Deployment"))["image"].rsplit(":", 1)[0]
    assert image["newName"] == "ghcr.io/dlr-gateway/dlr-gateway"
    assert re.fullmatch(r"\d+\.\d+\.\d+", image["newTag"]) or "digest" in image
    assert k["replicas"] == [{"name": "dlr-gateway", "count": 3}]
    assert {"migrate-job.yaml", "networkpolicy-migrate.yaml"} <= set(k["resources"])
    patches = {
        p["path"]: _documents(OVERLAYS / "production" / p["path"])[0]
        for p in k["patches"]
        if "path" in p
    }
    (deployment,) = [d for d in patches.values() if d["kind"] == "Deployment"]
    _requires_database_url(_container(deployment))


def _requires_database_url(container: dict[str, Any]) -> None:
    """GATEWAY_DATABASE_URL named from the Secret, not optional: a missing key stops the pod."""
    (env,) = [e for e in container["env"] if e["name"] == "GATEWAY_DATABASE_URL"]
    ref = env["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == ("dlr-gateway", "GATEWAY_DATABASE_URL")
    assert not ref.get("optional", False)


def _allows_postgres(policy: dict[str, Any]) -> bool:
    return any(
        (p["port"], p.get("protocol", "TCP")) == (POSTGRES_PORT, "TCP")
        for rule in policy["spec"]["egress"]
        for p in rule["ports"]
    )


def test_migration_job() -> None:
    """`dlr-gateway db upgrade`, with the Deployment's image, configuration and security."""
    job = _one("Job", OVERLAYS / "production")
    assert job["metadata"]["name"] == MIGRATE_JOB
    _validate(job, "overlays/production/migrate-job.yaml")
    spec = job["spec"]
    assert 0 < spec["backoffLimit"] <= 6
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["activeDeadlineSeconds"] > 0
    container = _container(job)
    assert container["command"] == MIGRATE
    args = _parser().parse_args(container["command"][1:])
    assert (args.command, args.db_command) == ("db", "upgrade")
    # Exit 2 is a configuration error: fail at once rather than retry.
    (rule,) = spec["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["containerName"] == container["name"]
    assert rule["onExitCodes"]["values"] == [2]

    deployment = _one("Deployment")
    gateway = _container(deployment)
    assert container["image"] == gateway["image"]
    assert container["envFrom"] == gateway["envFrom"]
    _requires_database_url(container)
    pod, gateway_pod = spec["template"]["spec"], deployment["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == gateway_pod["securityContext"]
    assert container["securityContext"] == gateway["securityContext"]
    for key in ("serviceAccountName", "automountServiceAccountToken", "enableServiceLinks"):
        assert pod[key] == gateway_pod[key], key
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][kind].keys()

    # Its pods are not the gateway's: no Service, PDB or HPA counts them.
    labels = spec["template"]["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        _one("Service")["spec"]["selector"],
        _one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        _one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ):
        assert not selector.items() <= labels.items(), selector
    # Their own policy: nothing in, DNS and PostgreSQL out.
    (policy,) = [
        p
        for p in _objects("NetworkPolicy", OVERLAYS / "production")
        if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert not policy["spec"].get("ingress")
    assert _allows_postgres(policy)


def _render(overlay: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    result = subprocess.run(  # a fixed argv, local files only
        [kubectl, "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
@pytest.mark.parametrize("overlay", ["sandbox", "production"])
def test_rendered_overlay_is_valid(overlay: str) -> None:
    objects = _render(OVERLAYS / overlay)
    kinds = {d["kind"] for d in objects}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler"} <= kinds
    namespace = _kustomization(overlay)["namespace"]
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue
        _validate(obj, f"kustomize {overlay}")
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace
    (deployment,) = [d for d in objects if d["kind"] == "Deployment"]
    image = _container(deployment)["image"]
    assert (
        image == f"ghcr.io/dlr-gateway/dlr-gateway:{_kustomization(overlay)['images'][0]['newTag']}"
    )
    if overlay == "sandbox":
        assert deployment["spec"]["replicas"] == 1
        assert "--sandbox" in _container(deployment)["command"]
        assert "Secret" in kinds
        assert "Job" not in kinds
    else:
        assert deployment["spec"]["replicas"] == 3
        assert "command" not in _container(deployment)
        assert "Secret" not in kinds
        assert "PrometheusRule" in kinds
        _requires_database_url(_container(deployment))
        (job,) = [d for d in objects if d["kind"] == "Job"]
        assert job["metadata"]["name"] == MIGRATE_JOB
        assert _container(job)["image"] == image
        assert _container(job)["command"] == MIGRATE
        policies = {d["metadata"]["name"]: d for d in objects if d["kind"] == "NetworkPolicy"}
        assert _allows_postgres(policies["dlr-gateway"])
        assert _allows_postgres(policies[MIGRATE_JOB])


# --- Grafana -----------------------------------------------------------------------------------


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def test_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert "__inputs" not in dashboard
    assert dashboard["uid"] == "dlr-gateway"
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(dashboard["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_uses_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used: set[str] = set()
    titles = set()
    for panel in _panels(dashboard["panels"]):
        titles.add(panel["title"])
        for target in panel.get("targets") or []:
            used |= _check_promql(target["expr"], f"panel {panel['title']!r}")
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else ""
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
            assert match, query
            _check_promql(f"sum by ({match[2]}) ({match[1]})", f"variable {variable['name']}")
    # Every family the gateway exports is on the dashboard.
    families = {family for family, _ in EXPORTED.values()}
    assert {EXPORTED[name][0] for name in used if name in EXPORTED} == families
    assert used & EXTERNAL_SERIES.keys(), "a readiness panel (kube-state-metrics or up)"
    for needed in ("Report latency", "Upstream error ratio", "Cache hit ratio", "Ready pods"):
        assert any(t.startswith(needed) for t in titles), needed


# --- Prometheus rules --------------------------------------------------------------------------


def _alerts() -> list[dict[str, Any]]:
    (rule,) = _documents(RULES)
    assert (rule["apiVersion"], rule["kind"]) == (MONITORING_API, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def _readme_anchors() -> set[str]:
    """GitHub's anchors for the headings of deploy/README.md."""
    anchors = set()
    for line in (DEPLOY / "README.md").read_text().splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_alert_rules_are_complete_and_documented() -> None:
    alerts = _alerts()
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS
    anchors = _readme_anchors()
    for alert in alerts:
        assert re.fullmatch(r"\d+[smh]", alert["for"]), alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        annotations = alert["annotations"]
        assert {"summary", "description", "runbook_url"} <= annotations.keys()
        url, _, anchor = annotations["runbook_url"].partition("#")
        assert url.endswith("/deploy/README.md"), url
        assert anchor == alert["alert"].lower()
        assert anchor in anchors, f"deploy/README.md has no section for {alert['alert']}"


def test_alert_rules_use_only_exported_metrics() -> None:
    for alert in _alerts():
        _check_promql(alert["expr"], f"alert {alert['alert']}")


# --- Dockerfile --------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
    assert not pending
    return instructions


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _dockerfile_instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfile_final_stage() -> None:
    stages = _stages()
    assert len(stages) >= 2, "multi-stage"
    builder, final = stages[0], stages[-1]
    base = final[0][1].split()[0]
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base), base
    # /opt/venv's interpreter is a symlink into the base image: both stages need the same one.
    assert builder[0][1].split()[0] == base
    instructions = dict(final)  # the last of each kind
    user = instructions["USER"].split(":")[0]
    assert user.isdigit(), "a numeric USER, so Kubernetes can check runAsNonRoot"
    assert int(user) == UID
    assert instructions["EXPOSE"] == str(PORT)
    assert json.loads(instructions["CMD"]) == SERVE
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    copies = [args for keyword, args in final if keyword in {"COPY", "ADD"}]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "only the venv reaches the image"
    runs = " ".join(args for keyword, args in final if keyword == "RUN")
    for tool in ("gcc", "build-essential", "apt-get", "pip "):
        assert tool not in runs, f"{tool} in the final stage"
    assert f"--uid {UID}" in runs
    assert "--no-create-home" in runs


def _dockerfile_pip_commands() -> list[str]:
    return [
        args for keyword, args in _dockerfile_instructions() if keyword == "RUN" and "pip" in args
    ]


def _script_pip_commands() -> list[str]:
    return [
        " ".join(line.split())
        for line in CHECK_SCRIPT.read_text().splitlines()
        if line.strip().startswith("pip ")
    ]


def test_check_script_replays_the_dockerfile_pip_steps() -> None:
    dockerfile = _dockerfile_pip_commands()
    assert dockerfile, "the Dockerfile installs with pip"
    assert _script_pip_commands() == dockerfile
    for command in dockerfile:
        words = shlex.split(command)
        assert "--no-cache-dir" in words
    assert CHECK_SCRIPT.stat().st_mode & 0o111, "executable"
    text = CHECK_SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert "dlr-gateway --help" in text
    assert "import gateway" in text
    # The script copies the same build context as the builder stage.
    copied = {
        source
        for keyword, args in _stages()[0]
        if keyword == "COPY"
        for source in args.split()[:-1]
    }
    (loop,) = re.findall(r"^for source in (.+); do$", text, flags=re.MULTILINE)
    assert set(loop.split()) == copied


def test_dockerignore_keeps_secrets_and_clutter_out() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".env", ".venv", "**/__pycache__", ".pytest_cache", "tests"} <= patterns
    assert any(p.startswith("bench-results") for p in patterns)
    # Nothing the builder stage COPYs is ignored.
    for source in ("pyproject.toml", "README.md", "gateway"):
        assert source not in patterns


def test_the_readmes_metric_and_alert_tables_name_every_one() -> None:
    """The README's Metrics table lacked the v2 order metrics, and its Alerts table the two
    v2 order alerts: an operator paged by DlrUpstreamOrderStuck found it in no table."""
    from gateway.metrics import Metrics

    readme = (ROOT / "README.md").read_text()
    table = set(re.findall(r"^\| `(dlr_[a-z_0-9]+)`", readme, re.M))
    for family in Metrics().registry.collect():
        assert {family.name, f"{family.name}_total", f"{family.name}_info"} & table, family.name
    documented = set(re.findall(r"^\| `(Dlr\w+)` \|", readme, re.M))
    assert {a["alert"] for a in _alerts()} <= documented
