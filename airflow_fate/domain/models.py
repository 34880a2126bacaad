"""Model catalog (the ``models.yaml`` format) and per-GPU-type rates.

Rates in the catalog are for one GPU of ``relative_speed`` 1.0 (an H100-80GB); other GPU
types scale by their relative speed unless ``per_gpu_type`` gives measured figures.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from airflow_fate.domain.cluster import FORMAT_VERSION, Cluster
from airflow_fate.errors import format_loc

GIB = 1024**3


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


LOAD_GBPS_HELP = (
    "GB of weights a GPU makes resident per second once their bytes are at hand (format "
    "conversion, dequantisation, allocation); a load takes the longer of reading the "
    "weights from the node's best tier and this. Omitted: loads are read-bound"
)


class RateOverride(_Strict):
    """Measured single-GPU rates of a model on one GPU type."""

    prefill_tokens_per_s: float = Field(gt=0)
    decode_tokens_per_s: float = Field(ge=0)
    load_gbps: float | None = Field(default=None, gt=0, description=LOAD_GBPS_HELP)


class ModelSpec(_Strict):
    """One servable model.

    ``min_shards``/``max_shards`` bound the tensor-parallel degree; ``decode_tokens_per_s``
    is the aggregate rate of a batched stage, 0 for encoder-only models. ``load_gbps``
    bounds how fast a GPU makes the weights resident whatever the tier they come from:
    a quantised file dequantised on load is bound by the conversion, not by the disk.
    """

    weights_gib: float = Field(gt=0)
    kv_bytes_per_token: int = Field(ge=0)
    prefill_tokens_per_s: float = Field(gt=0)
    decode_tokens_per_s: float = Field(ge=0)
    min_shards: int = Field(default=1, ge=1)
    max_shards: int = Field(default=1, ge=1)
    load_gbps: float | None = Field(default=None, gt=0, description=LOAD_GBPS_HELP)
    per_gpu_type: dict[str, RateOverride] = Field(default_factory=dict)
    path: str | None = Field(default=None, description="local model directory for the runtime")

    @model_validator(mode="after")
    def _shards_ordered(self) -> ModelSpec:
        if self.min_shards > self.max_shards:
            raise ValueError(
                f"min_shards ({self.min_shards}) is greater than max_shards ({self.max_shards})"
            )
        return self

    @property
    def weights_bytes(self) -> float:
        return self.weights_gib * GIB


class ModelCatalog(_Strict):
    """The ``models.yaml`` document."""

    version: int = FORMAT_VERSION
    models: dict[str, ModelSpec] = Field(min_length=1)

    def reference_errors(self, cluster: Cluster | None = None) -> list[tuple[str, str]]:
        """Cross-file problems as ``(path, reason)`` pairs."""
        errors: list[tuple[str, str]] = []
        if self.version != FORMAT_VERSION:
            errors.append(
                ("version", f"unsupported version {self.version}; expected {FORMAT_VERSION}")
            )
        if cluster is not None:
            for i, node in enumerate(cluster.nodes):
                for j, model in enumerate(node.models_on_disk):
                    if model not in self.models:
                        errors.append(
                            (
                                format_loc(["models"]),
                                f"no model {model!r}, which cluster.yaml "
                                f"nodes[{i}].models_on_disk[{j}] names",
                            )
                        )
            for name, spec in self.models.items():
                for gpu_type in spec.per_gpu_type:
                    if gpu_type not in cluster.gpu_types:
                        errors.append(
                            (
                                format_loc(["models", name, "per_gpu_type", gpu_type]),
                                f"unknown gpu_type {gpu_type!r}",
                            )
                        )
        return errors
