"""Building the API client from a kubeconfig (the production path), against the fake."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
from fake_apiserver import FakeApiServer
from k8s_testkit import NAMESPACE, write_kubeconfig
from kubernetes import client

from airflow_fate.launch.kubernetes.client import load_api_client


def test_kubeconfig_client_talks_to_the_server_with_its_token(
    apiserver: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    config = write_kubeconfig(tmp_path / "config", apiserver.url)
    api = load_api_client(str(config))
    try:
        pods = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE)
    finally:
        api.close()
    assert pods.items == []
    assert api.configuration.retries.total == 0


def test_kubeconfig_from_environment(
    apiserver: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_kubeconfig(tmp_path / "config", apiserver.url)
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")  # in a pod, but KUBECONFIG wins
    api = load_api_client()
    try:
        assert api.configuration.host == apiserver.url
    finally:
        api.close()
