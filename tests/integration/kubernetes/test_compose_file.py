"""docker-compose.yml: the Airflow 3 services, no Celery, one scheduler per launcher.

No Docker engine runs in CI. The file is checked three ways, each where its tool exists:
its structure (always), ``docker compose config`` / legacy ``docker-compose config``
(when installed), and the Compose Specification parser of the ``compose-spec`` wheel
after the same variable interpolation and YAML merge-key resolution Compose applies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[3] / "docker-compose.yml"
SERVICES = {
    "postgres",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-scheduler-gpu",
    "airflow-dag-processor",
    "airflow-triggerer",
}
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)-([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR-default}``, ``${VAR:-default}`` and ``$$``."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, colon, default = m.group(1), m.group(2), m.group(3)
            found = env.get(name)
            if found is None or (colon and found == ""):
                return default or ""
            return found

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the <<: merge keys
    assert isinstance(data, dict)
    return data


def test_services_are_airflow_3_without_celery(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "celery" not in str(service.get("command", "")), name
        assert not str(service.get("image", "")).startswith(("redis", "mher/flower")), name
        env = service.get("environment") or {}
        assert not any(k.startswith("AIRFLOW__CELERY") for k in env), name
    commands = {name: s.get("command") for name, s in services.items()}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    init_env = services["airflow-init"]["environment"]
    assert init_env["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init_env["_AIRFLOW_WWW_USER_CREATE"] == "true"


def test_schedulers_run_fate_executor_one_launcher_each(compose: dict[str, Any]) -> None:
    k8s = compose["services"]["airflow-scheduler"]
    gpu = compose["services"]["airflow-scheduler-gpu"]
    for scheduler in (k8s, gpu):
        assert scheduler["command"] == "scheduler"
        assert scheduler["environment"]["AIRFLOW__CORE__EXECUTOR"] == (
            "airflow_fate.executor.FateExecutor"
        )
    assert k8s["profiles"] == ["kubernetes"]
    assert gpu["profiles"] == ["local-gpu"]
    assert k8s["environment"]["AIRFLOW__FATE__LAUNCHER"] == "kubernetes"
    assert any(v.endswith(":/home/airflow/.kube/config:ro") for v in k8s["volumes"])
    assert "deploy" not in k8s
    assert gpu["environment"]["AIRFLOW__FATE__LAUNCHER"] == "local"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_references_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert spec["condition"] in (
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            )
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if not source.startswith(("$", ".", "/", "~")):
                assert source in (compose.get("volumes") or {}), f"{name}: volume {source}"


def test_compose_spec_parser_accepts_it(compose: dict[str, Any]) -> None:
    compose_spec = pytest.importorskip("compose_spec", reason="compose-spec wheel not installed")
    for profile_env in ({}, {"KUBECONFIG_FILE": "/tmp/kubeconfig", "AIRFLOW_UID": "1000"}):
        document = interpolate(compose, profile_env)
        parsed = compose_spec.PyCompose.from_json(json.dumps(document))
        parsed.validate()
        assert set(parsed.service_names()) == SERVICES


def test_compose_spec_parser_rejects_a_typo(compose: dict[str, Any]) -> None:
    compose_spec = pytest.importorskip("compose_spec", reason="compose-spec wheel not installed")
    document = interpolate(compose, {})
    document["services"]["postgres"]["healthcheck"]["retriez"] = 5
    with pytest.raises(ValueError, match="retriez"):
        compose_spec.PyCompose.from_json(json.dumps(document))


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.parametrize("profile", ["kubernetes", "local-gpu"])
def test_docker_compose_config(profile: str, tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {**os.environ, "COMPOSE_PROFILES": profile}
    result = subprocess.run(
        [*cli, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(rendered["services"]) >= SERVICES - {"airflow-scheduler", "airflow-scheduler-gpu"}


REPO = COMPOSE.parent


def _host_path(container_path: Path, volumes: list[str]) -> Path:
    """The repository file a bind mount of the service shows at ``container_path``."""
    for volume in volumes:
        source, target = volume.split(":")[:2]
        if container_path.is_relative_to(target):
            return (REPO / source / container_path.relative_to(target)).resolve()
    raise AssertionError(f"{container_path} is not under any bind mount of the service")


@pytest.mark.parametrize("name", ["airflow-scheduler", "airflow-scheduler-gpu"])
def test_fate_options_are_real_and_their_files_are_mounted(
    compose: dict[str, Any], name: str
) -> None:
    """Every ``AIRFLOW__FATE__*`` key is a ``[fate]`` option the executor reads, the set
    validates as `FateSettings`, and each file it names is mounted and loads."""
    from airflow_fate.domain.loaders import load_cluster, load_models
    from airflow_fate.executor.settings import FateSettings, load_settings
    from airflow_fate.launch.inventory import parse_devices
    from airflow_fate.launch.kubernetes.podspec import load_pod_template
    from airflow_fate.launch.kubernetes.settings import load_settings as load_launcher

    service = interpolate(compose["services"][name], {})
    prefix = "AIRFLOW__FATE__"
    options = {
        key.removeprefix(prefix).lower(): str(value)
        for key, value in service["environment"].items()
        if key.startswith(prefix)
    }
    assert set(options) <= set(FateSettings.model_fields), set(options) - set(
        FateSettings.model_fields
    )
    settings = load_settings(lambda section, key: options.get(key) if section == "fate" else None)
    volumes = service["volumes"]
    assert settings.cluster is not None, "compose schedulers plan on a cluster.yaml"
    assert load_cluster(_host_path(settings.cluster, volumes)).gpus
    assert load_models(_host_path(settings.models, volumes)).models
    if settings.launcher == "kubernetes":
        assert settings.kubernetes_settings is not None
        assert settings.kubernetes_devices is not None
        launcher = load_launcher(_host_path(settings.kubernetes_settings, volumes))
        assert launcher.pod.pod_template_file is not None
        assert load_pod_template(launcher.pod.pod_template_file)
        devices = _host_path(settings.kubernetes_devices, volumes)
        assert parse_devices(devices.read_text(), str(devices)).nodes


def test_every_airflow_service_mounts_the_example_dags(compose: dict[str, Any]) -> None:
    """``/opt/airflow/dags`` (Airflow's default DAGs folder in its image) is the
    repository's top-level ``dags/``, where the example DAGs live."""
    airflow = [n for n, s in compose["services"].items() if n != "postgres"]
    assert airflow
    for name in airflow:
        volumes = interpolate(compose["services"][name], {}).get("volumes") or []
        dags = _host_path(Path("/opt/airflow/dags"), volumes)
        assert dags == REPO / "dags", name
        assert {p.name for p in dags.glob("*.py")} >= {"taskflow_summary_judge.py"}, name
