"""Conventions every command keeps: plain-text help with defaults, `fate` by default,
described policies, and outputs readable by others (0644 under the usual umask)."""

from __future__ import annotations

import argparse
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_fate.atomic_file import write_atomically
from airflow_fate.cli import build_parser, main
from airflow_fate.planner.registry import describe, policy_names

MARKUP = re.compile(r"``|:\w+:`")


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


def test_every_help_is_plain_text_and_gives_defaults() -> None:
    seen = 0
    for path, parser in _commands(build_parser()):
        text = parser.format_help()
        assert not MARKUP.search(text), f"markup in `airflow-fate {' '.join(path)} --help`"
        for action in parser._actions:
            needs_default = (
                action.option_strings
                and not action.required
                and action.default not in (None, False, argparse.SUPPRESS)
            )
            if needs_default:
                seen += 1
                shown = parser._get_formatter()._expand_help(action)  # type: ignore[attr-defined]
                assert "default" in shown, f"{' '.join(path)} {action.option_strings}: {shown}"
    assert seen > 20, "the walk found the commands' options"


def test_fate_is_the_default_policy_of_simulate_and_run() -> None:
    parser = build_parser()
    for command in ("simulate", "run"):
        args = parser.parse_args([command, "--cluster", "c", "--models", "m", "--workload", "w"])
        assert args.policy == "fate", command
    assert parser.parse_args(["demo"]).policy == "fate"


def test_policies_describes_each_and_marks_ablations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policies"]) == 0
    out = capsys.readouterr().out
    for name in policy_names():
        info = describe(name)
        assert info.summary, name
        line = next(ln for ln in out.splitlines() if ln.split()[:1] == [name])
        if name.startswith("fate-"):
            assert info.kind == "ablation" and "ablation  of fate:" in line, line
        elif name == "fate":
            assert info.kind == "fate"
        else:
            assert info.kind == "baseline" and "baseline" in line, line
    assert main(["policies", "--names"]) == 0
    assert capsys.readouterr().out.split() == policy_names()


@pytest.fixture
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_generated_workload_is_readable_by_others(tmp_path: Path, usual_umask: None) -> None:
    out = tmp_path / "w.json"
    argv = ["workload", "generate", "--suite", "real-dag", "--workflows", "2", "--seed", "0"]
    code = main([*argv, "--out", str(out)])
    assert code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_atomic_write_keeps_the_old_file_when_the_check_fails(
    tmp_path: Path, usual_umask: None
) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("old\n")

    def reject(tmp: Path) -> None:
        assert tmp.suffix == ".yaml" and tmp.read_text() == "new\n"
        raise ValueError("rejected")

    with pytest.raises(ValueError, match="rejected"):
        write_atomically(path, "new\n", reject)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["doc.yaml"], "no temporary file left"
    write_atomically(path, "new\n")
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o644


def test_simulate_says_where_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import EXAMPLES

    out = tmp_path / "sim.json"
    inputs = [
        "--cluster",
        str(EXAMPLES / "cluster.yaml"),
        "--models",
        str(EXAMPLES / "models.yaml"),
    ]
    argv = ["simulate", *inputs, "--workload", str(EXAMPLES / "workload.json")]
    assert main([*argv, "--policy", "greedy-eft", "--json", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"wrote {out}"
    assert re.fullmatch(r"simulated \d+ stages in [\d.]+ s \([\d,]+ stages/s\)", lines[-2])
    assert out.exists()
    assert main([*argv, "--policy", "greedy-eft", "--no-timings"]) == 0
    assert "stages/s" not in capsys.readouterr().out, "--no-timings prints no wall clock"
