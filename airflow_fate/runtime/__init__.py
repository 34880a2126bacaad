"""The device worker: models kept resident, prefix KV kept warm, stages run for real.

A worker is one process bound to one device set (``CUDA_VISIBLE_DEVICES`` on GPUs, a
virtual CPU device with a memory budget otherwise). Launchers talk to it over a local
socket with the typed messages of `airflow_fate.runtime.protocol`.

Only `loaders`, `generate`, `encode`, `device` and `worker` import torch/transformers,
and only when called; `protocol`, `registry`, `lru` and `synthetic` are light so that a
launcher process never imports torch.
"""

from __future__ import annotations
