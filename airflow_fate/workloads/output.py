"""Write a generated workload as ``workload.json``, after proving it loads.

The layout is deterministic and diff-friendly: one line per workflow header and one per
stage, keys in the format's field order, ``None`` fields left out. The text is written
to a temporary file beside the target and read back through
`airflow_fate.domain.loaders.load_workload` against the same catalog and cluster; only
a document that loads replaces the target, so a generator bug can never leave a file
that ``simulate`` would reject.
"""

from __future__ import annotations

import json
from pathlib import Path

from airflow_fate.atomic_file import write_atomically
from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import load_workload
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.domain.workload import Workload
from airflow_fate.errors import InputError


def dumps(workload: Workload) -> str:
    """The ``workload.json`` text of ``workload`` (ends with a newline)."""
    doc = workload.model_dump(mode="json", exclude_none=True)
    lines = ["{", f'  "version": {json.dumps(doc["version"])},', '  "workflows": [']
    workflows = doc["workflows"]
    for w, wf in enumerate(workflows):
        head = json.dumps({k: v for k, v in wf.items() if k != "stages"})
        lines.append(f'    {head[:-1]}, "stages": [')
        stages = wf["stages"]
        for s, stage in enumerate(stages):
            lines.append(f"      {json.dumps(stage)}{',' if s < len(stages) - 1 else ''}")
        lines.append(f"    ]}}{',' if w < len(workflows) - 1 else ''}")
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def write_workload(
    workload: Workload, path: Path, catalog: ModelCatalog, cluster: Cluster | None = None
) -> None:
    """Write ``workload`` to ``path`` once it loads back cleanly.

    Raises:
        InputError: ``path`` is not a ``.json`` file name or cannot be written (``--out``).
        RuntimeError: the generated document does not load, which is a generator bug.
    """
    if path.suffix.lower() != ".json":
        raise InputError("--out", "", f"must be a .json file, got {str(path)!r}")
    if path.is_dir():
        raise InputError("--out", "", f"{str(path)!r} is a directory")

    def check(tmp: Path) -> None:
        try:
            load_workload(tmp, catalog, cluster)
        except InputError as exc:
            raise RuntimeError(f"generated workload does not load (generator bug): {exc}") from exc

    try:
        write_atomically(path, dumps(workload), check)
    except OSError as exc:
        raise InputError("--out", "", f"cannot write: {exc.strerror or exc}") from None
