"""Factories shared by the test suite: small clusters, catalogs and DAG-shaped workloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import Inputs, load_inputs
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import Workload

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def make_cluster(
    nodes: list[tuple[str, str, int]] | None = None, *, nvlink: bool = True, **interconnect: float
) -> Cluster:
    """A cluster from ``(name, gpu_type, gpu_count)`` rows (types: big, small)."""
    rows = nodes or [("n0", "big", 4), ("n1", "big", 4), ("n2", "small", 2)]
    ic = {
        "host_to_gpu_gbps": 25.0,
        "nvlink_gbps": 300.0,
        "local_disk_gbps": 3.0,
        "remote_store_gbps": 1.25,
    }
    ic.update(interconnect)
    return Cluster.model_validate(
        {
            "gpu_types": {
                "big": {"memory_gib": 80, "relative_speed": 1.0},
                "small": {"memory_gib": 24, "relative_speed": 0.25},
            },
            "interconnect": ic,
            "nodes": [
                {
                    "name": n,
                    "gpu_type": t,
                    "gpu_count": c,
                    "nvlink": nvlink,
                    "host_cache_gib": 256,
                    "network_gbps": 12.5,
                }
                for n, t, c in rows
            ],
        }
    )


def make_catalog(**extra: dict[str, Any]) -> ModelCatalog:
    models: dict[str, Any] = {
        "small-lm": {
            "weights_gib": 4.0,
            "kv_bytes_per_token": 65536,
            "prefill_tokens_per_s": 20000,
            "decode_tokens_per_s": 2000,
        },
        "mid-lm": {
            "weights_gib": 15.0,
            "kv_bytes_per_token": 131072,
            "prefill_tokens_per_s": 12000,
            "decode_tokens_per_s": 1200,
            "max_shards": 2,
        },
        "big-lm": {
            "weights_gib": 120.0,
            "kv_bytes_per_token": 327680,
            "prefill_tokens_per_s": 1500,
            "decode_tokens_per_s": 450,
            "min_shards": 2,
            "max_shards": 4,
        },
        "embed": {
            "weights_gib": 1.0,
            "kv_bytes_per_token": 0,
            "prefill_tokens_per_s": 100000,
            "decode_tokens_per_s": 0,
        },
    }
    models.update(extra)
    return ModelCatalog.model_validate({"models": models})


def stage(
    sid: str, model: str = "small-lm", parents: list[str] | None = None, **kw: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": sid,
        "model": model,
        "input_tokens": kw.pop("input_tokens", 1000),
        "output_tokens": kw.pop("output_tokens", 100),
        "output_mb": kw.pop("output_mb", 1.0),
        "parents": parents or [],
    }
    out.update(kw)
    return out


def chain(n: int = 4, model: str = "small-lm") -> list[dict[str, Any]]:
    return [stage(f"s{i}", model, [f"s{i - 1}"] if i else []) for i in range(n)]


def fork_join(width: int = 3) -> list[dict[str, Any]]:
    return [
        stage("src"),
        *(stage(f"w{i}", parents=["src"]) for i in range(width)),
        stage("join", parents=[f"w{i}" for i in range(width)]),
    ]


def diamond() -> list[dict[str, Any]]:
    return [
        stage("a"),
        stage("b", parents=["a"]),
        stage("c", "mid-lm", parents=["a"]),
        stage("d", parents=["b", "c"]),
    ]


def wide_fanout(width: int = 12) -> list[dict[str, Any]]:
    pre = {"id": "sys", "tokens": 600}
    return [
        stage("root", "embed"),
        *(stage(f"f{i}", parents=["root"], prefix=pre) for i in range(width)),
    ]


def mixed_models() -> list[dict[str, Any]]:
    return [
        stage("embed", "embed", output_tokens=0),
        stage("rewrite", "small-lm", ["embed"]),
        stage("answer", "mid-lm", ["rewrite"], prefix={"id": "rag", "tokens": 500}),
        stage("judge", "small-lm", ["answer"]),
    ]


def sharded() -> list[dict[str, Any]]:
    return [
        stage("plan", "mid-lm"),
        stage("big", "big-lm", ["plan"], input_tokens=3000),
        stage("after", "small-lm", ["big"]),
        stage("big2", "big-lm", ["plan"], max_shards=2),
    ]


SHAPES = {
    "chain": chain,
    "fork-join": fork_join,
    "diamond": diamond,
    "wide-fanout": wide_fanout,
    "mixed-models": mixed_models,
    "sharded": sharded,
}


def make_workload(stages: list[dict[str, Any]], copies: int = 3, gap_s: float = 2.0) -> Workload:
    return Workload.model_validate(
        {
            "workflows": [
                {"id": f"wf{i}", "arrival_s": i * gap_s, "stages": stages} for i in range(copies)
            ]
        }
    )


@pytest.fixture(scope="session")
def example_inputs() -> Inputs:
    return load_inputs(
        EXAMPLES / "cluster.yaml", EXAMPLES / "models.yaml", EXAMPLES / "workload.json"
    )
