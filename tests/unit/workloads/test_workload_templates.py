"""Every template builds a valid, loadable DAG with seeded variation around its sources."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import load_workload
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import StageSpec, WorkflowSpec, Workload
from airflow_fate.workloads import dumps
from airflow_fate.workloads.template import StageList, Template
from airflow_fate.workloads.templates import REAL_DAG, metagpt_coding
from airflow_fate.workloads.templates.shared_context_fanout import template as fanout

ALL = [pytest.param(t, id=t.name) for t in REAL_DAG] + [
    pytest.param(fanout(0.0, 1), id="fanout-F0"),
    pytest.param(fanout(0.9, 16), id="fanout-F0.9"),
]


def _instances(template: Template, n: int, seed: int = 7) -> list[list[StageSpec]]:
    return [template.build(np.random.default_rng([seed, i])) for i in range(n)]


@pytest.mark.parametrize("template", ALL)
def test_instances_load_as_a_valid_workload(
    template: Template, tmp_path: Path, catalog: ModelCatalog, cluster: Cluster
) -> None:
    workflows = [
        WorkflowSpec(id=f"w{i}", template=template.name, arrival_s=float(i), stages=stages)
        for i, stages in enumerate(_instances(template, 30))
    ]
    path = tmp_path / "w.json"
    path.write_text(dumps(Workload(workflows=workflows)), encoding="utf-8")
    loaded = load_workload(path, catalog, cluster)
    assert len(loaded.workflows) == 30


@pytest.mark.parametrize("template", ALL)
def test_instances_use_only_declared_models(template: Template) -> None:
    used = {s.model for stages in _instances(template, 60) for s in stages}
    assert used <= template.models
    assert used, "a template must produce stages"


@pytest.mark.parametrize("template", ALL)
def test_same_generator_state_gives_same_instance(template: Template) -> None:
    assert _instances(template, 5, seed=3) == _instances(template, 5, seed=3)


@pytest.mark.parametrize("template", ALL)
def test_token_counts_vary_between_instances(template: Template) -> None:
    totals = {sum(s.input_tokens for s in stages) for stages in _instances(template, 20)}
    assert len(totals) > 10


@pytest.mark.parametrize("template", [pytest.param(t, id=t.name) for t in REAL_DAG])
def test_llm_stages_share_a_template_wide_prefix(template: Template) -> None:
    """System prompts are shared across instances, so reuse across workflows is possible."""
    ids = [
        {s.prefix.id for s in stages if s.prefix is not None} for stages in _instances(template, 30)
    ]
    for i, mine in enumerate(ids):
        others = set().union(*(ids[:i] + ids[i + 1 :]))
        assert mine & others, f"instance {i} shares no prefix with any other instance"


@pytest.mark.parametrize("module", REAL_DAG, ids=lambda t: t.name)
def test_docstring_cites_source_and_token_counts(module: Template) -> None:
    import importlib

    name = module.name.replace("-", "_")
    doc = importlib.import_module(f"airflow_fate.workloads.templates.{name}").__doc__ or ""
    assert "Source" in doc
    assert "Token counts used" in doc


def test_real_dag_uses_every_catalog_model(catalog: ModelCatalog) -> None:
    used = set().union(*(t.models for t in REAL_DAG))
    assert used == set(catalog.models)
    assert len(REAL_DAG) >= 8


def test_metagpt_means_match_the_published_logs() -> None:
    stages = [s for inst in _instances(metagpt_coding.TEMPLATE, 400) for s in inst]

    def mean(prefix: str, field: str) -> float:
        return statistics.fmean(getattr(s, field) for s in stages if s.id.startswith(prefix))

    assert mean("architect", "input_tokens") == pytest.approx(182, rel=0.05)
    assert mean("architect", "output_tokens") == pytest.approx(706, rel=0.05)
    assert mean("code_", "input_tokens") == pytest.approx(2991, rel=0.05)
    assert mean("review_", "input_tokens") == pytest.approx(3717, rel=0.05)
    assert mean("revise_", "input_tokens") == pytest.approx(4175, rel=0.05)


def test_stage_list_rejects_unknown_parents_and_long_prefixes() -> None:
    from airflow_fate.domain.workload import PrefixSpec

    wf = StageList()
    wf.add("a", "m", 10, 1)
    with pytest.raises(ValueError, match="unknown parents"):
        wf.add("b", "m", 10, 1, parents=["x"])
    with pytest.raises(ValueError, match="duplicate"):
        wf.add("a", "m", 10, 1)
    with pytest.raises(ValueError, match="prefix longer"):
        wf.add("c", "m", 10, 1, prefix=PrefixSpec(id="p", tokens=11))
