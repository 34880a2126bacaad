"""Which runs a replay covers, and the replay itself: what the CLI and the UI call.

The chosen runs are those of the DAGs asked for (one run by id, or every run started
since a time). They did not have the GPUs to themselves: every other run with a stage
on GPUs while they ran is replayed too, whole, so that each policy places the same
competing work; the figures count the chosen runs only. A chosen run that cannot be
replayed is an error when asked for by id and a note otherwise; a sharing run that
cannot be replayed is a note (its load is then missing from every replay).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from airflow_fate.errors import InputError
from airflow_fate.planner.registry import policy_names
from airflow_fate.replay.compare import compare
from airflow_fate.replay.config import ReplayInputs
from airflow_fate.replay.records import PastRun, RunSource
from airflow_fate.replay.report import ReplayReport
from airflow_fate.replay.runs import NotReplayableError, past_run
from airflow_fate.state.hosting import Hosting


class RunSourceReader(Protocol):
    """What the replay reads (`replay.reading.RunReader`; a fake in tests)."""

    def run_ids(self, dag_id: str, since: datetime | None = None) -> list[str]: ...

    def has_run(self, dag_id: str, run_id: str) -> bool: ...

    def sharing(self, since: datetime, until: datetime) -> list[tuple[str, str]]: ...

    def source(self, dag_id: str, run_id: str) -> RunSource: ...


@dataclass(frozen=True)
class ReplayRequest:
    """Runs to replay: ``run_id`` of the one DAG, or runs of ``dag_ids`` since ``since``.

    ``policies`` None means every registered policy; the policy that ran is always added.
    """

    dag_ids: tuple[str, ...]
    run_id: str | None = None
    since: datetime | None = None
    policies: tuple[str, ...] | None = None


def what_if(
    reader: RunSourceReader,
    request: ReplayRequest,
    inputs: ReplayInputs,
    visible: Callable[[str], bool] = lambda dag_id: True,
) -> ReplayReport:
    """Replay the requested runs under each policy (see the module docstring).

    Raises:
        InputError: the run does not exist or cannot be replayed, or no run can.
    """
    notes: list[str] = []
    chosen = _chosen(reader, request, inputs, notes)
    since = min(r.start for r in chosen)
    until = max(s.exited for r in chosen for s in r.stages)
    keys = {r.key for r in chosen}
    sharing: list[PastRun] = []
    for dag_id, run_id in reader.sharing(since, until):
        if f"{dag_id}/{run_id}" in keys:
            continue
        try:
            sharing.append(_past(reader, dag_id, run_id, inputs))
        except NotReplayableError as exc:
            who = str(exc) if visible(dag_id) else "a run of a DAG you may not see"
            notes.append(f"not replayed, although it shared the GPUs: {who}")
    runs = sorted([*chosen, *sharing], key=lambda r: (r.start, r.key))
    ran = sorted(set().union(*(r.policies for r in chosen)))
    names = list(request.policies) if request.policies is not None else policy_names()
    names += [n for n in ran if n not in names and n in policy_names()]
    earlier = sum(r.earlier_tries for r in chosen)
    if earlier:
        notes.append(f"{earlier} earlier tries of retried stages are not replayed")
    return compare(
        runs,
        keys,
        inputs.cluster,
        inputs.catalog,
        [inputs.make_policy(n) for n in names],
        hosting=Hosting(),
        visible=visible,
        notes=notes,
    )


def _chosen(
    reader: RunSourceReader, request: ReplayRequest, inputs: ReplayInputs, notes: list[str]
) -> list[PastRun]:
    if request.run_id is not None:
        [dag_id] = request.dag_ids
        if not reader.has_run(dag_id, request.run_id):
            raise InputError("--run-id", "", f"DAG {dag_id!r} has no run {request.run_id!r}")
        try:
            return [_past(reader, dag_id, request.run_id, inputs)]
        except NotReplayableError as exc:
            raise InputError("--run-id", "", str(exc)) from None
    chosen: list[PastRun] = []
    for dag_id in request.dag_ids:
        for run_id in reader.run_ids(dag_id, request.since):
            try:
                chosen.append(_past(reader, dag_id, run_id, inputs))
            except NotReplayableError as exc:
                notes.append(f"not replayed: {exc}")
    if not chosen:
        since = f" since {request.since.isoformat()}" if request.since else ""
        skipped = f" ({'; '.join(notes)})" if notes else ""
        raise InputError(
            "--dag-id", "", f"no replayable run of {', '.join(request.dag_ids)}{since}{skipped}"
        )
    return chosen


def _past(reader: RunSourceReader, dag_id: str, run_id: str, inputs: ReplayInputs) -> PastRun:
    run = past_run(reader.source(dag_id, run_id), inputs.catalog, inputs.cluster)
    launchers = {s.row.launcher for s in run.stages}
    if launchers != {"local"}:
        raise NotReplayableError(
            f"run {run.key} ran with launcher {', '.join(sorted(launchers))}; replays cover "
            "the local launcher only"
        )
    return run


__all__ = ["ReplayRequest", "RunSourceReader", "what_if"]
