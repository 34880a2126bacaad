"""``airflow-fate demo`` options that need no Airflow: ``--serve``, ``--port`` and
``--dags-folder``."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_fate.cli import build_parser
from airflow_fate.cli.demo import run, serve_until_interrupted
from airflow_fate.errors import InputError


class _Services:
    """Stands in for `AirflowEnvironment`'s liveness checks only."""

    def __init__(self, dies_after: int | None = None, interrupt_after: int | None = None):
        self.calls: list[str] = []
        self.dies_after = dies_after
        self.interrupt_after = interrupt_after

    def check_alive(self, name: str) -> None:
        self.calls.append(name)
        n = len(self.calls)
        if self.interrupt_after is not None and n > self.interrupt_after:
            raise KeyboardInterrupt
        if self.dies_after is not None and n > self.dies_after:
            raise RuntimeError(f"{name} exited with code 1")


def test_serve_watches_both_services_until_ctrl_c() -> None:
    services = _Services(interrupt_after=6)
    serve_until_interrupted(services, poll_s=0.0)  # type: ignore[arg-type]
    assert services.calls[:6] == ["api-server", "scheduler"] * 3


def test_serve_reports_a_service_that_died() -> None:
    services = _Services(dies_after=3)
    with pytest.raises(RuntimeError, match="scheduler exited"):
        serve_until_interrupted(services, poll_s=0.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("port", [0, 70000])
def test_bad_port_is_refused_before_anything_starts(port: int) -> None:
    args = build_parser().parse_args(["demo", "--timeout", "10", "--port", str(port)])
    with pytest.raises(InputError, match="--port"):
        run(args)


@pytest.mark.parametrize("make", [False, True], ids=["missing", "empty"])
def test_a_dags_folder_without_dags_is_refused_before_anything_starts(
    tmp_path: Path, make: bool
) -> None:
    folder = tmp_path / "dags"
    if make:
        folder.mkdir()
    home = tmp_path / "home"
    args = build_parser().parse_args(
        ["demo", "--dags-folder", str(folder), "--home", str(home), "--timeout", "10"]
    )
    with pytest.raises(InputError, match="--dags-folder DIR") as err:
        run(args)
    assert err.value.source == str(folder)
    assert not home.exists(), "nothing was created"
