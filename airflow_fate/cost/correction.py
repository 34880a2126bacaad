"""Online correction of the cost model from measured stage times, persisted between runs.

Per ``(model, gpu type)`` two factors: ``compute`` for prefill + decode, ``load`` for
model loads. Each is a ratio of exponentially decayed sums of measured over *profile*
seconds (the estimate with no correction), so it is independent of the factor in force
when the stage was planned (no feedback loop), weighs long stages more than short ones,
and follows drift: each observation keeps ``DECAY`` of the weight of what came before.
`cost_model` builds a `CostModel` with the factors (``correction`` / ``load_correction``).

The state file is small JSON (``version: 1``); a missing file is an empty store.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from airflow_fate.atomic_file import write_atomically
from airflow_fate.cost.estimator import CostModel
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import read_document, validate_document
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.plan import StageCost
from airflow_fate.errors import InputError

FORMAT_VERSION = 1
DECAY = 0.8
"""Weight an observation leaves to the history before it (0.8: ~5 observations' memory)."""
MIN_FACTOR, MAX_FACTOR = 1e-3, 1e3


class Ratio(BaseModel):
    """Decayed sums of measured and profile seconds of one component."""

    model_config = ConfigDict(extra="forbid")

    measured_s: float = Field(default=0.0, ge=0)
    estimated_s: float = Field(default=0.0, ge=0)
    samples: int = Field(default=0, ge=0)

    def add(self, measured: float, estimated: float) -> None:
        self.measured_s = DECAY * self.measured_s + measured
        self.estimated_s = DECAY * self.estimated_s + estimated
        self.samples += 1

    @property
    def factor(self) -> float | None:
        if self.samples == 0 or self.estimated_s <= 0:
            return None
        return min(max(self.measured_s / self.estimated_s, MIN_FACTOR), MAX_FACTOR)


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    gpu_type: str
    compute: Ratio = Field(default_factory=Ratio)
    load: Ratio = Field(default_factory=Ratio)


class CorrectionFile(BaseModel):
    """The state file document."""

    model_config = ConfigDict(extra="forbid")

    version: int = FORMAT_VERSION
    entries: list[Entry] = Field(default_factory=list)


class CorrectionStore:
    """Correction factors per (model, gpu type), learned online."""

    def __init__(self, entries: list[Entry] | None = None) -> None:
        self._entries = {(e.model, e.gpu_type): e for e in entries or []}

    @classmethod
    def load(cls, path: str | Path) -> CorrectionStore:
        """Read a state file; an absent file gives an empty store."""
        p = Path(path)
        if not p.exists():
            return cls()
        doc = validate_document(CorrectionFile, read_document(p), str(p))
        if doc.version != FORMAT_VERSION:
            raise InputError(str(p), "version", f"unsupported version {doc.version}")
        return cls(doc.entries)

    @property
    def learned(self) -> int:
        """How many (model, GPU type) pairs have factors (not ``__len__``: an empty
        store must stay truthy where callers write ``store or CorrectionStore()``)."""
        return len(self._entries)

    def save(self, path: str | Path) -> None:
        """Write atomically (a crash never leaves a half-written file)."""
        p = Path(path)
        doc = CorrectionFile(entries=sorted(self._entries.values(), key=_entry_key))
        write_atomically(p, doc.model_dump_json(indent=2) + "\n")

    def observe(
        self,
        model: str,
        gpu_type: str,
        *,
        compute: tuple[float, float] | None = None,
        load: tuple[float, float] | None = None,
    ) -> None:
        """Record ``(measured, profile estimate)`` seconds of compute and/or load."""
        entry = self._entries.setdefault((model, gpu_type), Entry(model=model, gpu_type=gpu_type))
        for ratio, pair in ((entry.compute, compute), (entry.load, load)):
            if pair is not None and pair[0] > 0 and pair[1] > 0:
                ratio.add(*pair)

    def observe_stage(
        self, model: str, gpu_type: str, profile: StageCost, measured: StageCost
    ) -> None:
        """Learn from one finished stage: its profile estimate and its measured costs.

        Loads count only when both the profile and the run had one (a stage the state
        believed warm that loaded anyway, after a worker restart, says nothing of load
        speed).
        """
        both_cold = profile.load > 0 and measured.load > 0
        self.observe(
            model,
            gpu_type,
            compute=(measured.prefill + measured.decode, profile.prefill + profile.decode),
            load=(measured.load, profile.load) if both_cold else None,
        )

    def factors(self) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
        """(compute factors, load factors) for the pairs observed."""
        compute: dict[tuple[str, str], float] = {}
        load: dict[tuple[str, str], float] = {}
        for key, entry in self._entries.items():
            if (f := entry.compute.factor) is not None:
                compute[key] = f
            if (f := entry.load.factor) is not None:
                load[key] = f
        return compute, load

    def cost_model(self, cluster: Cluster, catalog: ModelCatalog) -> CostModel:
        """A cost model with these factors applied."""
        compute, load = self.factors()
        return CostModel(cluster, catalog, correction=compute, load_correction=load)


def _entry_key(entry: Entry) -> tuple[str, str]:
    return entry.model, entry.gpu_type
