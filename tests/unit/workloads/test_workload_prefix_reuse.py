"""The prefix-reuse sweep: requested fraction and prefix count, everything else fixed."""

from __future__ import annotations

import pytest

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import Workload
from airflow_fate.workloads import PREFIX_FRACTION_SWEEP, GenerateRequest, SuiteOptions, generate


def _workload(
    cluster: Cluster, catalog: ModelCatalog, fraction: float, prefixes: int, n: int = 300
) -> Workload:
    options = SuiteOptions(prefix_fraction=fraction, prefixes=prefixes)
    request = GenerateRequest("prefix-reuse", n, seed=21, options=options)
    return generate(request, cluster, catalog).workload


@pytest.mark.parametrize("fraction", PREFIX_FRACTION_SWEEP)
def test_prefix_share_of_input_tokens_is_the_requested_fraction(
    fraction: float, cluster: Cluster, catalog: ModelCatalog
) -> None:
    stages = [s for wf in _workload(cluster, catalog, fraction, 4).workflows for s in wf.stages]
    prefix = sum(s.prefix.tokens for s in stages if s.prefix is not None)
    share = prefix / sum(s.input_tokens for s in stages)
    assert share == pytest.approx(fraction, abs=0.015)
    if fraction == 0:
        assert all(s.prefix is None for s in stages)
    else:
        assert all(s.prefix is not None for s in stages)


@pytest.mark.parametrize("prefixes", [1, 3, 16])
def test_number_of_distinct_contexts_is_the_requested_count(
    prefixes: int, cluster: Cluster, catalog: ModelCatalog
) -> None:
    wl = _workload(cluster, catalog, 0.5, prefixes)
    contexts = {s.prefix.id.rsplit("/", 1)[0] for wf in wl.workflows for s in wf.stages if s.prefix}
    assert len(contexts) == prefixes


def test_one_prefix_id_always_has_one_length(cluster: Cluster, catalog: ModelCatalog) -> None:
    lengths: dict[str, set[int]] = {}
    for wf in _workload(cluster, catalog, 0.75, 8).workflows:
        for s in wf.stages:
            assert s.prefix is not None
            lengths.setdefault(s.prefix.id, set()).add(s.prefix.tokens)
    assert all(len(v) == 1 for v in lengths.values())


def test_sweep_changes_only_prefixes(cluster: Cluster, catalog: ModelCatalog) -> None:
    """Same seed: same arrivals, DAGs, models and outputs at every F and P."""

    def shape(wl: Workload) -> list[tuple[float, list[tuple[str, str, int, list[str]]]]]:
        return [
            (wf.arrival_s, [(s.id, s.model, s.output_tokens, s.parents) for s in wf.stages])
            for wf in wl.workflows
        ]

    base = shape(_workload(cluster, catalog, 0.0, 1, n=60))
    for fraction, prefixes in [(0.25, 2), (0.9, 16)]:
        assert shape(_workload(cluster, catalog, fraction, prefixes, n=60)) == base


def test_input_volume_is_about_the_same_at_every_fraction(
    cluster: Cluster, catalog: ModelCatalog
) -> None:
    def volume(fraction: float) -> int:
        wl = _workload(cluster, catalog, fraction, 4, n=400)
        return sum(s.input_tokens for wf in wl.workflows for s in wf.stages)

    assert volume(0.9) == pytest.approx(volume(0.0), rel=0.03)


def test_models_and_widths_still_vary(cluster: Cluster, catalog: ModelCatalog) -> None:
    wl = _workload(cluster, catalog, 0.5, 4)
    assert len({len(wf.stages) for wf in wl.workflows}) >= 5
    assert len({s.model for wf in wl.workflows for s in wf.stages}) == 3
