"""``airflow-fate workload generate``: files, summary and option errors (exit code 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from airflow_fate.cli import main
from airflow_fate.domain.loaders import load_inputs
from airflow_fate.planner.registry import make_policy
from airflow_fate.sim.simulator import simulate

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _generate(out: Path, *extra: str) -> int:
    return main(
        ["workload", "generate", "--workflows", "12", "--seed", "3", "--out", str(out), *extra]
    )


def test_writes_a_loadable_file_and_a_one_line_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nested" / "w.json"
    assert _generate(out, "--suite", "real-dag") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert "12 workflows" in lines[0] and "stages" in lines[0] and "arrivals over" in lines[0]
    inputs = load_inputs(EXAMPLES / "cluster.yaml", EXAMPLES / "models.yaml", out)
    result = simulate(
        inputs.cluster, inputs.catalog, inputs.workload, make_policy("greedy-eft", 0), noise=0
    )
    assert len(result.workflows) == 12
    assert [p.name for p in out.parent.iterdir()] == ["w.json"]  # no temporary file left


def test_same_options_give_the_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    opts = ("--suite", "prefix-reuse", "--prefix-fraction", "0.75", "--prefixes", "3")
    assert _generate(a, *opts) == 0
    assert _generate(b, *opts) == 0
    assert a.read_bytes() == b.read_bytes()


def test_committed_example_matches_the_generator(tmp_path: Path) -> None:
    out = tmp_path / "real-dag-small.json"
    argv = ["workload", "generate", "--suite", "real-dag", "--workflows", "40", "--seed", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    committed = EXAMPLES / "workloads" / "real-dag-small.json"
    assert out.read_bytes() == committed.read_bytes(), (
        "regenerate with: airflow-fate workload generate --suite real-dag --workflows 40 "
        "--seed 1 --out examples/workloads/real-dag-small.json"
    )


@pytest.mark.parametrize(
    ("args", "flag", "reason"),
    [
        pytest.param(["--suite", "nope"], "--suite", "unknown suite 'nope'", id="suite"),
        pytest.param(
            ["--suite", "real-dag", "--workflows", "0"], "--workflows", "at least 1", id="workflows"
        ),
        pytest.param(["--suite", "real-dag", "--seed", "-1"], "--seed", ">= 0", id="seed"),
        pytest.param(["--suite", "real-dag", "--load", "0"], "--load", "> 0", id="load-zero"),
        pytest.param(["--suite", "real-dag", "--load", "nan"], "--load", "> 0", id="load-nan"),
        pytest.param(
            ["--suite", "real-dag", "--prefix-fraction", "0.5"],
            "--prefix-fraction",
            "only applies to --suite prefix-reuse",
            id="fraction-wrong-suite",
        ),
        pytest.param(
            ["--suite", "real-dag", "--prefixes", "2"],
            "--prefixes",
            "only applies to --suite prefix-reuse",
            id="prefixes-wrong-suite",
        ),
        pytest.param(
            ["--suite", "prefix-reuse", "--prefix-fraction", "1"],
            "--prefix-fraction",
            "must be in [0, 1)",
            id="fraction-range",
        ),
        pytest.param(
            ["--suite", "prefix-reuse", "--prefixes", "0"],
            "--prefixes",
            "at least 1",
            id="prefixes",
        ),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    args: list[str], flag: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "workload",
        "generate",
        "--workflows",
        "5",
        "--seed",
        "0",
        "--out",
        str(tmp_path / "w.json"),
    ]
    # later options win in argparse, so the case's own values override the defaults above
    assert main([*argv, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag}: ")
    assert reason in err
    assert not (tmp_path / "w.json").exists()


def test_out_must_be_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _generate(tmp_path / "w.yaml", "--suite", "real-dag") == 2
    assert "error: --out: must be a .json file" in capsys.readouterr().err


def test_catalog_without_a_suite_model_is_an_error_on_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load((EXAMPLES / "models.yaml").read_text(encoding="utf-8"))
    del doc["models"]["whisper-large-v3"]
    models = tmp_path / "models.yaml"
    models.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert _generate(tmp_path / "w.json", "--suite", "real-dag", "--models", str(models)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --models: ") and "whisper-large-v3" in err


def test_cluster_too_small_for_the_suite_is_an_error_on_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = yaml.safe_load((EXAMPLES / "cluster.yaml").read_text(encoding="utf-8"))
    doc["nodes"] = [n for n in doc["nodes"] if n["gpu_type"] == "L4-24GB"]  # no room for 70B
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert _generate(tmp_path / "w.json", "--suite", "real-dag", "--cluster", str(cluster)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --cluster: ") and "fits no node" in err
