"""What one more (or one fewer) copy of a model is worth to its whole ready backlog.

Under saturation a model's ready stages can number in the hundreds. The residency and
eviction terms (`supply`) play at most `supply.MAX_DEMAND` of them onto the copies and
charge each at most its cold option (a stage that would wait longer loads its own copy),
and the window schedule sees at most ``window_per_model`` of them. Neither sees that
the queue behind the copies lasts minutes: a load that opens a copy on an idle group
never pays inside the window, and the copies of the bottleneck model stay as few as at
the start while the other GPUs idle or serve models with short queues.

The whole backlog is valued here as a fluid: ``count`` stages drain through ``copies``
copies at one stage per ``run_s`` each, so stage i waits about ``i * run_s / copies``
and the summed wait is ``count**2 * run_s / (2 * copies)``. A copy ready in
``ready_in_s`` seconds drains at its own rate from then on; the summed wait it saves is
its gain. Losing one of several copies costs the rise in summed wait. Both are closed
forms, constant work per option however long the queue.
"""

from __future__ import annotations

from collections.abc import Mapping

from airflow_fate.state.cluster_state import Snapshot


def copy_gain(count: int, run_s: float, copies: int, ready_in_s: float, new_run_s: float) -> float:
    """Summed seconds of waiting a new copy saves ``count`` queued stages of a model.

    ``copies`` copies serve now, one stage per ``run_s`` each; the new copy starts
    serving in ``ready_in_s`` at one stage per ``new_run_s``. Zero when the backlog
    drains before the new copy is ready, or when there is no copy yet (the first copy's
    value is the cold load every stage would otherwise pay, which the residency term
    prices).
    """
    if count <= 0 or copies <= 0 or run_s <= 0 or new_run_s <= 0:
        return 0.0
    rate = copies / run_s
    if ready_in_s >= count / rate:
        return 0.0
    left = count - rate * ready_in_s
    before = count * count / (2 * rate)
    after = (
        count * ready_in_s
        - rate * ready_in_s * ready_in_s / 2
        + left * left / (2 * (rate + 1 / new_run_s))
    )
    return before - after


def copy_loss(count: int, run_s: float, copies: int) -> float:
    """Summed seconds of waiting that losing one of ``copies`` adds to ``count`` stages.

    Zero for the only copy: without one every stage pays a cold load instead of a
    wait, and the eviction term (`supply`) prices that.
    """
    if count <= 0 or copies <= 1 or run_s <= 0:
        return 0.0
    return count * count * run_s / 2 * (1 / (copies - 1) - 1 / copies)


class BacklogValue:
    """Per decision epoch: each model's ready backlog, warm run and copies.

    ``runs`` maps a model to the mean warm run of its stages at their fastest layouts
    (`demand.DemandRates.mean_runs`); a model without one counts no backlog.
    """

    def __init__(self, snap: Snapshot, runs: Mapping[str, float]) -> None:
        self._snap = snap
        self._runs = runs
        self._count: dict[str, int] = {}
        stages = snap.graph.stages
        for uid in snap.frontier:
            model = stages[uid].model
            self._count[model] = self._count.get(model, 0) + 1
        self._copies: dict[str, int] = {}

    def copies(self, model: str) -> int:
        hit = self._copies.get(model)
        if hit is None:
            hit = self._copies[model] = len(self._snap.model_groups(model))
        return hit

    def load_term(
        self, model: str, gpus: tuple[int, ...], tokens: int, ready_in_s: float, run_s: float
    ) -> float:
        """Seconds to add to a load of ``model`` onto ``gpus``: what the copies it evicts
        cost their models' backlogs, less what the new copy (serving from ``ready_in_s``,
        one stage per ``run_s``) saves its own."""
        gain = copy_gain(
            self._count.get(model, 0),
            self._runs.get(model, 0.0),
            self.copies(model),
            ready_in_s,
            run_s,
        )
        lost = {
            residency
            for g in gpus
            for residency in self._snap.evicted_by(g, model, gpus, tokens)
            if residency[0] != model
        }
        loss = sum(
            copy_loss(self._count.get(m, 0), self._runs.get(m, 0.0), self.copies(m))
            for m, _ in sorted(lost)
        )
        return loss - gain
