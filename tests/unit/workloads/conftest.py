"""Fixtures for the workload tests: the example cluster and catalog, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import load_cluster, load_models
from airflow_fate.domain.models import ModelCatalog

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    return load_cluster(EXAMPLES / "cluster.yaml")


@pytest.fixture(scope="session")
def catalog(cluster: Cluster) -> ModelCatalog:
    return load_models(EXAMPLES / "models.yaml", cluster)
