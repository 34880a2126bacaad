"""Fixtures: the fake API server, its kubelet, and clients and launchers pointed at it.

The ``kubernetes`` client is imported inside the fixtures that need it, so the manifest
and compose tests in this directory still run where the ``[kubernetes]`` extra is absent
(the client tests skip themselves with ``pytest.importorskip``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from fake_apiserver import FakeApiServer, FakeKubelet
from k8s_testkit import FakeClock, LauncherFactory, SleepRecorder, settings_for

from airflow_fate.launch.kubernetes.settings import LauncherSettings

if TYPE_CHECKING:
    from kubernetes import client

    from airflow_fate.launch.kubernetes.launcher import KubernetesLauncher


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer(default_watch_timeout_s=5) as server:
        yield server


@pytest.fixture
def kubelet(apiserver: FakeApiServer) -> FakeKubelet:
    return FakeKubelet(apiserver)


@pytest.fixture
def api_client(apiserver: FakeApiServer) -> Iterator[client.ApiClient]:
    pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
    from airflow_fate.launch.kubernetes.client import api_client_for_host

    api = api_client_for_host(apiserver.url)
    yield api
    api.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_launcher(
    apiserver: FakeApiServer, clock: FakeClock, sleeps: SleepRecorder
) -> Iterator[LauncherFactory]:
    """Builds started launchers against the fake server; closes them all at teardown."""
    pytest.importorskip("kubernetes", reason="the [kubernetes] extra is not installed")
    from airflow_fate.launch.kubernetes.client import api_client_for_host
    from airflow_fate.launch.kubernetes.launcher import KubernetesLauncher

    made: list[KubernetesLauncher] = []

    def factory(settings: LauncherSettings | None = None, **kwargs: Any) -> KubernetesLauncher:
        launcher = KubernetesLauncher(
            settings or settings_for(),
            api_client_factory=lambda: api_client_for_host(apiserver.url),
            clock=clock,
            sleep=sleeps,
            **kwargs,
        )
        launcher.start()
        made.append(launcher)
        return launcher

    yield factory
    for launcher in made:
        launcher.close(join_timeout_s=0.5)
