"""The joint frontier assignment, solved with OR-Tools CP-SAT (greedy as fallback).

Data: stages ``s`` of the frontier, each with a weight ``w_s > 0`` (criticality) and a
short list of scored candidates ``c`` (a GPU group ``G_c`` with score ``f_sc`` seconds),
plus a deferral cost ``d_s`` seconds.

Variables: ``x[s, c] in {0, 1}`` (s runs on candidate c), ``y[s] in {0, 1}`` (s is
deferred to a later epoch).

Constraints:
  - each stage is placed once or deferred: ``sum_c x[s, c] + y[s] = 1``;
  - each GPU takes at most one new stage this epoch:
    ``sum over (s, c) with g in G_c of x[s, c] <= 1`` for every GPU g.

Objective: ``minimise sum w_s * f_sc * x[s, c] + sum w_s * d_s * y[s]``, with every
coefficient scaled to integer microseconds (CP-SAT works on integers; stages of
embedding models run for well under a millisecond).

`build_model`, `solve` and `extract` are separate pure steps; `greedy_assign` gives the
answer used when the solver is switched off or returns no feasible solution in time
(a trivial one always exists: defer everything, so only a timeout can leave us without).
This module and `schedule` are the only ones that import OR-Tools.
"""

from __future__ import annotations

from dataclasses import dataclass

from ortools.sat.python import cp_model

SCALE = 1_000_000.0


@dataclass(frozen=True)
class Choice:
    """One candidate of one stage in solver terms."""

    gpus: tuple[int, ...]
    score: float


@dataclass(frozen=True)
class Problem:
    """The data of one joint assignment."""

    stages: tuple[int, ...]
    weights: dict[int, float]
    choices: dict[int, tuple[Choice, ...]]
    defer: dict[int, float]

    def objective(self, picks: dict[int, int | None]) -> float:
        """Objective value (seconds, unscaled) of a pick per stage (None = deferred)."""
        total = 0.0
        for s in self.stages:
            i = picks.get(s)
            cost = self.defer[s] if i is None else self.choices[s][i].score
            total += self.weights[s] * cost
        return total


@dataclass
class Model:
    cp: cp_model.CpModel
    x: dict[tuple[int, int], cp_model.IntVar]
    y: dict[int, cp_model.IntVar]


@dataclass(frozen=True)
class Solution:
    """Chosen candidate index per stage (None = deferred), and how it was obtained."""

    picks: dict[int, int | None]
    fallback: bool
    status: str


class LeanCpModel(cp_model.CpModel):
    """A `CpModel` without its deprecated camelCase aliases.

    The constructor of `CpModel` adds a camelCase alias of every ``add_*``/``new_*``
    method, a walk over ``dir()`` of about half a millisecond per model. FATE builds a
    model per decision and calls only the snake_case names, so that walk was a tenth of a
    simulated run's time. The model and its solution are the same.
    """

    def _add_pre_pep8_methods(self) -> None:
        """Add no aliases: nothing here calls them."""


def _coef(weight: float, seconds: float) -> int:
    return round(weight * seconds * SCALE)


def build_model(p: Problem) -> Model:
    cp = LeanCpModel()
    x: dict[tuple[int, int], cp_model.IntVar] = {}
    y: dict[int, cp_model.IntVar] = {}
    by_gpu: dict[int, list[cp_model.IntVar]] = {}
    terms: list[cp_model.LinearExprT] = []
    for s in p.stages:
        y[s] = cp.new_bool_var(f"defer_s{s}")
        row = [y[s]]
        for i, ch in enumerate(p.choices[s]):
            var = cp.new_bool_var(f"x_s{s}_c{i}")
            x[s, i] = var
            row.append(var)
            for g in ch.gpus:
                by_gpu.setdefault(g, []).append(var)
            terms.append(_coef(p.weights[s], ch.score) * var)
        cp.add_exactly_one(row)
        terms.append(_coef(p.weights[s], p.defer[s]) * y[s])
    for vars_ in by_gpu.values():
        if len(vars_) > 1:
            cp.add_at_most_one(vars_)
    cp.minimize(sum(terms))
    return Model(cp, x, y)


def solve(
    p: Problem,
    model: Model,
    *,
    time_limit_s: float,
    num_workers: int,
    random_seed: int,
    work_limit: float | None = None,
) -> Solution:
    """Solve; fall back to `greedy_assign` unless CP-SAT proves or finds a solution.

    ``work_limit`` bounds CP-SAT's deterministic time (its own work units, roughly
    seconds): with one worker the same problem gets the same answer on a busy or an idle
    machine. ``time_limit_s`` is the wall-clock safety net that keeps the scheduler live.
    """
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    if work_limit is not None:
        solver.parameters.max_deterministic_time = work_limit
    solver.parameters.num_workers = num_workers
    solver.parameters.random_seed = random_seed
    status = solver.solve(model.cp)
    name = solver.status_name(status)
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return Solution(extract(p, model, solver), fallback=False, status=name)
    # INFEASIBLE / MODEL_INVALID cannot happen for a well-formed problem (deferring all
    # is feasible); UNKNOWN means the time limit hit first. Either way: stay live.
    return Solution(greedy_assign(p), fallback=True, status=name)


def extract(p: Problem, model: Model, solver: cp_model.CpSolver) -> dict[int, int | None]:
    picks: dict[int, int | None] = {}
    for s in p.stages:
        picks[s] = None
        for i in range(len(p.choices[s])):
            if solver.boolean_value(model.x[s, i]):
                picks[s] = i
                break
    return picks


def greedy_assign(p: Problem) -> dict[int, int | None]:
    """Most critical stage first, each takes its best non-conflicting choice or defers."""
    used: set[int] = set()
    picks: dict[int, int | None] = {}
    for s in sorted(p.stages, key=lambda s: (-p.weights[s], s)):
        picks[s] = None
        best = p.defer[s]
        for i, ch in enumerate(p.choices[s]):
            if ch.score < best and not used.intersection(ch.gpus):
                picks[s], best = i, ch.score
        pick = picks[s]
        if pick is not None:
            used.update(p.choices[s][pick].gpus)
    return picks
