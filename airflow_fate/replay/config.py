"""The executor's inputs a replay needs: cluster, models and the planner's ``[fate]`` knobs.

A replay must plan as the executor planned: with its ``cluster.yaml`` and ``models.yaml``
(the stored predictions were made with them, `replay.calibration`) and with the FATE
horizon and time limit it ran with. They are read from the ``[fate]`` options of the
Airflow configuration through a getter (Airflow's ``conf.get``), unless given
explicitly; policies are built by the executor's own `configured_policy`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from airflow_fate.domain.cluster import Cluster
from airflow_fate.domain.loaders import format_loc, load_cluster, load_models
from airflow_fate.domain.models import ModelCatalog
from airflow_fate.errors import InputError
from airflow_fate.executor.runtime import configured_policy
from airflow_fate.executor.settings import FateSettings
from airflow_fate.planner.policy import Policy

Getter = Callable[[str, str], str | None]
"""Reads one option (section, key) -> value or None."""

PLANNER_OPTIONS = ("seed", "horizon", "planner_time_limit_s")


@dataclass(frozen=True)
class ReplayInputs:
    """The loaded cluster and catalog, and a factory of policies configured as the executor's."""

    cluster: Cluster
    catalog: ModelCatalog
    make_policy: Callable[[str], Policy]


def replay_inputs(
    get: Getter, cluster: Path | None = None, models: Path | None = None
) -> ReplayInputs:
    """Load the inputs; ``cluster`` and ``models`` default to ``[fate] cluster/models``.

    Raises:
        InputError: an input is not set, or a file or ``[fate]`` option is invalid.
    """
    cluster_path = cluster or _path(get, "cluster", "--cluster")
    models_path = models or _path(get, "models", "--models")
    loaded = load_cluster(cluster_path)
    catalog = load_models(models_path, loaded)
    values: dict[str, object] = {"models": models_path}
    for name in PLANNER_OPTIONS:
        value = get("fate", name)
        if value is not None and value.strip():
            values[name] = value.strip()
    try:
        base = FateSettings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError("[fate]", format_loc(first["loc"]), first["msg"]) from None

    def make(name: str) -> Policy:
        return configured_policy(base.model_copy(update={"policy": name}))

    return ReplayInputs(loaded, catalog, make)


def _path(get: Getter, option: str, flag: str) -> Path:
    value = (get("fate", option) or "").strip()
    if not value:
        raise InputError(
            flag, "", f"not given and [fate] {option} is not set in the Airflow configuration"
        )
    return Path(value)
