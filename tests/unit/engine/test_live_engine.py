"""The live engine's loop with a scripted launcher and clock: fast and deterministic.

The fake launcher "runs" each stage for a time derived from the profile cost model (times
a factor), on a fake clock it advances in `poll`, so these tests exercise arrivals,
failures, skips, timeouts and the online correction without processes or torch.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from airflow_fate.cost.correction import CorrectionStore
from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.graph import StageInfo, WorkloadGraph
from airflow_fate.domain.loaders import Inputs, load_inputs
from airflow_fate.engine.calibration import estimate_error
from airflow_fate.engine.live import LiveEngine, LiveOutcome
from airflow_fate.launch.types import StageEvent, StageFailed, StageLaunch, StageSucceeded
from airflow_fate.planner.registry import make_policy
from airflow_fate.runtime.errors import StageError
from airflow_fate.runtime.protocol import ModelSource, StageResult, StageTiming, TokenCounts
from airflow_fate.sim.simulator import simulate

LOCAL = Path(__file__).resolve().parents[3] / "examples" / "local"


@dataclass
class FakeClock:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class FakeLauncher:
    """Finishes stages after ``compute x profile compute + load x profile load`` seconds."""

    clock: FakeClock
    inputs: Inputs
    compute: float = 1.0
    load: float = 1.0
    fail: set[str] = field(default_factory=set)
    stuck: set[str] = field(default_factory=set)
    launched: list[StageLaunch] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.graph = WorkloadGraph.from_workload(self.inputs.workload, self.inputs.catalog)
        self.by_key = {f"{s.workflow_id}/{s.stage_id}": s for s in self.graph.stages}
        self.cost = CostModel(self.inputs.cluster, self.inputs.catalog)
        self.resident: dict[int, str] = {}
        self.prefixes: set[tuple[int, str, str | None]] = set()
        self.heap: list[tuple[float, int, StageEvent]] = []

    def launch(self, launch: StageLaunch) -> None:
        self.launched.append(launch)
        if launch.key in self.stuck:
            return
        stage = self.by_key[launch.key]
        device = launch.devices[0]
        warm = self.resident.get(device) == stage.model
        self.resident[device] = stage.model
        load = 0.0 if warm else self.load * self._profile_load(stage)
        prefix = (device, stage.model, stage.prefix_id)
        reused = stage.prefix_tokens if prefix in self.prefixes else 0
        self.prefixes.add(prefix)
        prefill, decode = (self.compute * x for x in self.cost.compute_time(stage, 0, 1, reused))
        end = self.clock.t + load + prefill + decode
        event: StageEvent
        if launch.key in self.fail:
            event = StageFailed(launch.key, end, "worker-died", "worker was killed")
        else:
            event = StageSucceeded(
                launch.key, end, _result(launch.key, stage, load, prefill, decode)
            )
        heapq.heappush(self.heap, (end, len(self.launched), event))

    def _profile_load(self, stage: StageInfo) -> float:
        gib = self.inputs.catalog.models[stage.model].weights_gib
        return gib * 1024**3 / 1e9 / self.inputs.cluster.interconnect.remote_store_gbps

    def poll(self, timeout_s: float = 0.0) -> list[StageEvent]:
        if self.heap and self.heap[0][0] <= self.clock.t + timeout_s:
            self.clock.t = max(self.clock.t, self.heap[0][0])
            out = []
            while self.heap and self.heap[0][0] <= self.clock.t:
                out.append(heapq.heappop(self.heap)[2])
            return out
        self.clock.t += timeout_s
        return []

    def cancel(self, key: str) -> None:
        self.cancelled.append(key)

    def adopt(self, keys: Sequence[str]) -> list[str]:
        return []

    def close(self) -> None:
        self.heap.clear()


def _result(key: str, stage: StageInfo, load: float, prefill: float, decode: float) -> StageResult:
    return StageResult(
        key=key,
        model=stage.model,
        model_warm=load == 0.0,
        prefix_warm=False,
        timing=StageTiming(
            load_s=load, prefill_s=prefill, decode_s=decode, total_s=load + prefill + decode
        ),
        tokens=TokenCounts(
            input_tokens=stage.input_tokens,
            prefill_tokens=stage.input_tokens,
            reused_prefix_tokens=0,
            output_tokens=stage.output_tokens,
        ),
        texts=[f"output of {key}"],
    )


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    """The local example, priced the way `FakeLauncher` runs it: every load reads the
    weights at one slow bandwidth (no conversion bound, nothing pre-pulled) and each
    device has a core to itself, so the noise-free simulation sees the fake's exact
    times."""
    example = load_inputs(LOCAL / "cluster.yaml", LOCAL / "models.yaml", LOCAL / "workload.json")
    interconnect = example.cluster.interconnect.model_copy(
        update={"host_to_gpu_gbps": 0.02, "local_disk_gbps": 0.02, "remote_store_gbps": 0.02}
    )
    nodes = [
        n.model_copy(update={"models_on_disk": (), "cpu_cores": None})
        for n in example.cluster.nodes
    ]
    cluster = example.cluster.model_copy(update={"interconnect": interconnect, "nodes": nodes})
    models = {
        name: m.model_copy(update={"load_gbps": None}) for name, m in example.catalog.models.items()
    }
    catalog = example.catalog.model_copy(update={"models": models})
    return replace(example, cluster=cluster, catalog=catalog)


def _source(name: str) -> ModelSource:
    return ModelSource(name=name, kind="causal-lm", directory="/m", weights_bytes=1)


def run(
    inputs: Inputs,
    launcher: FakeLauncher,
    policy: str = "greedy-eft",
    store: CorrectionStore | None = None,
    **kw: object,
) -> LiveOutcome:
    engine = LiveEngine(
        cluster=inputs.cluster,
        catalog=inputs.catalog,
        workload=inputs.workload,
        policy=make_policy(policy),
        launcher=launcher,
        resolve=kw.pop("resolve", _source),  # type: ignore[arg-type]
        corrections=store or CorrectionStore(),
        clock=launcher.clock,
        **kw,  # type: ignore[arg-type]
    )
    return engine.run()


@pytest.mark.parametrize("policy", ["round-robin", "greedy-eft"])
def test_live_result_has_the_simulate_format(inputs: Inputs, policy: str) -> None:
    launcher = FakeLauncher(FakeClock(), inputs)
    outcome = run(inputs, launcher, policy)
    live = outcome.result
    assert live is not None and not outcome.failed and not outcome.skipped
    sim = simulate(inputs.cluster, inputs.catalog, inputs.workload, make_policy(policy), noise=0)
    assert live.model_dump().keys() == sim.model_dump().keys()
    assert live.placements[0].model_dump().keys() == sim.placements[0].model_dump().keys()
    assert len(live.placements) == len(sim.placements) == 22
    assert live.policy == policy
    # same decisions and the same costs as the noise-free simulation: identical schedule
    assert live.makespan_s == pytest.approx(sim.makespan_s, abs=1e-3)
    assert live.counters.model_loads == sim.counters.model_loads
    arrivals = {w.id: w.arrival_s for w in inputs.workload.workflows}
    assert all(p.start_s >= arrivals[p.workflow] for p in live.placements)


def test_parent_outputs_flow_into_child_requests(inputs: Inputs) -> None:
    launcher = FakeLauncher(FakeClock(), inputs)
    run(inputs, launcher)
    answer = next(x for x in launcher.launched if x.key == "rag-0/answer")
    prompts = getattr(answer.request.task, "prompts", [])
    assert "output of rag-0/rerank" in prompts[0]


def test_a_failed_stage_skips_its_descendants_only(inputs: Inputs) -> None:
    launcher = FakeLauncher(FakeClock(), inputs, fail={"rag-0/rerank"})
    outcome = run(inputs, launcher)
    assert outcome.result is None
    assert [(f.stage, f.reason) for f in outcome.failed] == [("rag-0/rerank", "worker-died")]
    assert sorted(outcome.skipped) == ["rag-0/answer", "rag-0/judge"]
    launched = {x.key for x in launcher.launched}
    assert "rag-0/answer" not in launched
    assert len(launched) == 22 - 2  # everything else ran
    assert len(outcome.samples) == 22 - 3


def test_unresolvable_model_fails_its_stages(inputs: Inputs) -> None:
    def resolve(name: str) -> ModelSource:
        if name == "all-minilm-l6-v2":
            raise StageError("unknown-model", f"model {name!r} is not installed")
        return _source(name)

    launcher = FakeLauncher(FakeClock(), inputs)
    outcome = run(inputs, launcher, resolve=resolve)
    reasons = {f.reason for f in outcome.failed}
    assert reasons == {"unknown-model"}
    assert all("not installed" in f.message for f in outcome.failed)
    assert not any(x.request.model.name == "all-minilm-l6-v2" for x in launcher.launched)


def test_run_timeout_cancels_and_ends(inputs: Inputs) -> None:
    launcher = FakeLauncher(FakeClock(), inputs, stuck={"rag-0/embed_docs"})
    outcome = run(inputs, launcher, run_timeout_s=500.0)
    assert launcher.cancelled == ["rag-0/embed_docs"]
    failed = {f.stage: f.reason for f in outcome.failed}
    assert failed["rag-0/embed_docs"] == "timeout"
    assert failed["rag-0/judge"] == "timeout"  # never reached
    assert outcome.result is None
    assert launcher.clock.t - 1000.0 < 510.0


def test_online_correction_learns_the_factors(inputs: Inputs, tmp_path: Path) -> None:
    store = CorrectionStore()
    launcher = FakeLauncher(FakeClock(), inputs, compute=2.0, load=0.5)
    outcome = run(inputs, launcher, store=store)
    compute, load = store.factors()
    assert compute[("smollm2-135m-instruct", "cpu-slice")] == pytest.approx(2.0)
    assert load[("smollm2-135m-instruct", "cpu-slice")] == pytest.approx(0.5)
    err = estimate_error(outcome.samples)
    assert err.profile_mape > 0.4
    assert err.corrected_mape < err.profile_mape / 2
    path = tmp_path / "c.json"
    store.save(path)
    again = FakeLauncher(FakeClock(), inputs, compute=2.0, load=0.5)
    second = run(inputs, again, store=CorrectionStore.load(path), learn=False)
    assert estimate_error(second.samples).corrected_mape < 0.01


def test_learning_off_leaves_the_store_untouched(inputs: Inputs) -> None:
    store = CorrectionStore()
    run(inputs, FakeLauncher(FakeClock(), inputs, compute=3.0), store=store, learn=False)
    assert store.factors() == ({}, {})
