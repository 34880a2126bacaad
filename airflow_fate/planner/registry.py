"""Policy names -> factories. The CLI, simulator, benchmark and executor look up here."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

from airflow_fate.planner.baselines.autellix import Autellix
from airflow_fate.planner.baselines.cpop import Cpop
from airflow_fate.planner.baselines.greedy_eft import GreedyEft
from airflow_fate.planner.baselines.heft import Heft
from airflow_fate.planner.baselines.kube_default import KubeDefault
from airflow_fate.planner.baselines.least_loaded import LeastLoaded
from airflow_fate.planner.baselines.model_affinity import ModelAffinity
from airflow_fate.planner.baselines.parrot import Parrot
from airflow_fate.planner.baselines.peft import Peft
from airflow_fate.planner.baselines.prefix_affinity import PrefixAffinity
from airflow_fate.planner.baselines.random_choice import RandomChoice
from airflow_fate.planner.baselines.round_robin import RoundRobin
from airflow_fate.planner.fate import ABLATION_NOTES, ABLATIONS, Fate, FateConfig
from airflow_fate.planner.policy import Policy, PolicyFactory

BASELINES: dict[str, PolicyFactory] = {
    "round-robin": RoundRobin,
    "random": RandomChoice,
    "least-loaded": LeastLoaded,
    "greedy-eft": GreedyEft,
    "heft": Heft,
    "cpop": Cpop,
    "peft": Peft,
    "kube-default": KubeDefault,
    "model-affinity": ModelAffinity,
    "prefix-affinity": PrefixAffinity,
    "parrot": Parrot,
    "autellix": Autellix,
}


def _fate_factory(name: str, config: FateConfig) -> PolicyFactory:
    def make(seed: int) -> Policy:
        return Fate(name, replace(config, random_seed=seed))

    return make


FATE_POLICIES: dict[str, PolicyFactory] = {
    name: _fate_factory(name, config) for name, config in ABLATIONS.items()
}

_REGISTRY: dict[str, PolicyFactory] = {**FATE_POLICIES, **BASELINES}


def policy_names() -> list[str]:
    return list(_REGISTRY)


@dataclass(frozen=True)
class PolicyInfo:
    """What ``airflow-fate policies`` says about one policy.

    Attributes:
        name: the registered name.
        kind: ``fate``, ``ablation`` (a FATE variant with one mechanism changed) or
            ``baseline``.
        summary: one line; a baseline's is the first line of its module's docstring, so
            the description lives with the code it describes.
    """

    name: str
    kind: str
    summary: str


def describe(name: str) -> PolicyInfo:
    """The `PolicyInfo` of a registered policy (KeyError naming the known ones if not)."""
    if name not in _REGISTRY:
        raise _unknown(name)
    if name in FATE_POLICIES:
        kind = "fate" if name == "fate" else "ablation"
        return PolicyInfo(name, kind, ABLATION_NOTES[name])
    doc = sys.modules[BASELINES[name].__module__].__doc__ or ""
    return PolicyInfo(name, "baseline", doc.strip().splitlines()[0] if doc.strip() else "")


def make_policy(name: str, seed: int = 0) -> Policy:
    """A fresh policy for one run; raises KeyError naming the known policies."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise _unknown(name) from None
    return factory(seed)


def _unknown(name: str) -> KeyError:
    return KeyError(f"unknown policy {name!r} (known: {', '.join(_REGISTRY)})")
