"""Determinism, Poisson arrivals and the load formula of the generator."""

from __future__ import annotations

import itertools
import statistics

import numpy as np
import pytest

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.workloads import GenerateRequest, capacity, dumps, generate
from airflow_fate.workloads.arrivals import poisson_arrivals
from airflow_fate.workloads.suites import SUITES, SuiteOptions


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_same_seed_gives_identical_bytes(
    suite: str, cluster: Cluster, catalog: ModelCatalog
) -> None:
    request = GenerateRequest(suite, 25, seed=11)
    first = dumps(generate(request, cluster, catalog).workload)
    second = dumps(generate(request, cluster, catalog).workload)
    assert first == second


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_different_seeds_give_different_workloads(
    suite: str, cluster: Cluster, catalog: ModelCatalog
) -> None:
    a = dumps(generate(GenerateRequest(suite, 25, seed=1), cluster, catalog).workload)
    b = dumps(generate(GenerateRequest(suite, 25, seed=2), cluster, catalog).workload)
    assert a != b


def test_instance_depends_only_on_seed_and_index(cluster: Cluster, catalog: ModelCatalog) -> None:
    small = generate(GenerateRequest("real-dag", 10, seed=4), cluster, catalog).workload
    large = generate(GenerateRequest("real-dag", 30, seed=4), cluster, catalog).workload
    assert small.workflows == large.workflows[:10]


def test_poisson_arrivals_have_the_requested_rate_and_exponential_gaps() -> None:
    rate = 2.5
    times = poisson_arrivals(np.random.default_rng(123), 20_000, rate)
    gaps = _gaps(times)
    assert times[0] == 0.0
    assert all(g >= 0 for g in gaps)
    assert statistics.fmean(gaps) == pytest.approx(1 / rate, rel=0.03)
    # exponential: standard deviation equals the mean (coefficient of variation 1)
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, abs=0.05)


def test_generated_arrivals_follow_the_offered_rate(
    cluster: Cluster, catalog: ModelCatalog
) -> None:
    gen = generate(GenerateRequest("prefix-reuse", 4000, seed=9, load=0.5), cluster, catalog)
    gaps = _gaps([wf.arrival_s for wf in gen.workload.workflows])
    assert statistics.fmean(gaps) == pytest.approx(1 / gen.offered.rate, rel=0.05)


def test_rate_is_load_times_capacity_over_mean_work(
    cluster: Cluster, catalog: ModelCatalog
) -> None:
    offered = generate(GenerateRequest("real-dag", 5, seed=0, load=0.7), cluster, catalog).offered
    # examples/cluster.yaml: 16 H100 (1.0) + 8 A100 (0.55) + 16 L4 (0.18)
    assert capacity(cluster) == pytest.approx(16 + 8 * 0.55 + 16 * 0.18)
    assert offered.capacity == pytest.approx(capacity(cluster))
    assert offered.rate == pytest.approx(0.7 * offered.capacity / offered.mean_work)
    assert offered.mean_work > 0


def test_doubling_the_load_halves_every_gap(cluster: Cluster, catalog: ModelCatalog) -> None:
    base = generate(GenerateRequest("real-dag", 200, seed=5, load=0.4), cluster, catalog)
    double = generate(GenerateRequest("real-dag", 200, seed=5, load=0.8), cluster, catalog)
    t1 = [wf.arrival_s for wf in base.workload.workflows]
    t2 = [wf.arrival_s for wf in double.workload.workflows]
    assert statistics.fmean(_gaps(t2)) == pytest.approx(statistics.fmean(_gaps(t1)) / 2, rel=1e-4)
    assert t2 == pytest.approx([t / 2 for t in t1], abs=2e-6)
    # only arrivals change with the load
    strip = [wf.model_copy(update={"arrival_s": 0.0}) for wf in base.workload.workflows]
    assert strip == [wf.model_copy(update={"arrival_s": 0.0}) for wf in double.workload.workflows]


def test_mean_work_does_not_depend_on_prefix_options(
    cluster: Cluster, catalog: ModelCatalog
) -> None:
    def rate(fraction: float, prefixes: int) -> float:
        options = SuiteOptions(prefix_fraction=fraction, prefixes=prefixes)
        request = GenerateRequest("prefix-reuse", 3, seed=0, options=options)
        return generate(request, cluster, catalog).offered.rate

    assert rate(0.0, 1) == rate(0.9, 16) == rate(0.5, 4)


def test_real_dag_mix_covers_every_template(cluster: Cluster, catalog: ModelCatalog) -> None:
    gen = generate(GenerateRequest("real-dag", 400, seed=3), cluster, catalog)
    counts: dict[str, int] = {}
    for wf in gen.workload.workflows:
        assert wf.template is not None
        counts[wf.template] = counts.get(wf.template, 0) + 1
    assert len(counts) == 10
    assert min(counts.values()) > 20  # uniform mix: 40 expected each
    assert len(gen.models) == len(catalog.models)
