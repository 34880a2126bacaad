"""Options and checks shared by the commands that take a cluster, catalog and workload."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from airflow_fate.errors import InputError
from airflow_fate.planner.registry import policy_names
from airflow_fate.state.hosting import HOSTING_MODES, HostingMode

DEFAULT_POLICY = "fate"
"""The policy every command uses unless ``--policy`` says otherwise."""

_LITERAL = re.compile(r"(?::[\w:]+:)?`{1,2}([^`]+?)`{1,2}")
"""reStructuredText literals and roles (``x``, `x`, :class:`x`) in docstrings and help."""


def plain(text: str) -> str:
    """``text`` without reStructuredText markup: help is read in a terminal."""
    return _LITERAL.sub(r"\1", text)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Plain-text help for every command: markup removed, defaults shown.

    Descriptions keep their line breaks (they are module docstrings, laid out by hand).
    An option's default is appended unless its help already states it or there is
    nothing to say (no default, a flag that is off, a required option).
    """

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = plain(action.help or "")
        default = action.default
        silent = (
            default is None
            or default is False
            or default == argparse.SUPPRESS
            or action.required
            or not action.option_strings
            or "default" in text
        )
        if silent:
            return text
        shown = ",".join(str(v) for v in default) if isinstance(default, list | tuple) else default
        return f"{text} (default: {str(shown).replace('%', '%%')})"


LAUNCHER_HELP = (
    "how stages are hosted: 'local' long-lived device workers (default); 'worker-pods' "
    "long-lived Kubernetes pods per GPU set (cluster.yaml pod_start_s to start one, lost "
    "when replaced or idle); 'pod-per-stage' a fresh pod per stage that keeps nothing "
    "(Airflow's KubernetesExecutor)"
)


def add_launcher_arg(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    """``--launcher`` (and its old spelling ``--pod-per-stage``): what GPUs keep.

    With ``many`` it takes a comma list (``args.launcher`` is then a tuple), one
    benchmark per launcher.
    """
    if many:
        p.add_argument(
            "--launcher",
            type=launcher_list,
            default=("local",),
            help=f"comma list, one benchmark each; {LAUNCHER_HELP}",
        )
    else:
        p.add_argument("--launcher", choices=HOSTING_MODES, default="local", help=LAUNCHER_HELP)
    p.add_argument(
        "--pod-start-s",
        type=float,
        default=None,
        help="seconds to start a pod, overriding cluster.yaml's pod_start_s (default: "
        "the cluster's figure)",
    )
    p.add_argument(
        "--lazy-pods",
        action="store_true",
        help="with worker-pods: start each pod on first use instead of one per GPU when "
        "the scheduler starts",
    )
    p.add_argument(
        "--pod-per-stage",
        dest="launcher",
        action="store_const",
        const=("pod-per-stage",) if many else "pod-per-stage",
        help="the same as --launcher pod-per-stage",
    )


def launcher_list(text: str) -> tuple[HostingMode, ...]:
    """A comma list of hosting modes, without repeats, in `HOSTING_MODES` order."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in HOSTING_MODES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of {', '.join(HOSTING_MODES)}; got {text!r}"
        )
    return tuple(m for m in HOSTING_MODES if m in names)


def float_list(text: str) -> tuple[float, ...]:
    """A comma list of numbers, without repeats, in the given order (argparse ``type``)."""
    problem = f"expected a comma list of numbers, got {text!r}"
    try:
        values = tuple(dict.fromkeys(float(v) for v in text.split(",") if v.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(problem) from None
    if not values:
        raise argparse.ArgumentTypeError(problem)
    return values


def add_input_args(p: argparse.ArgumentParser) -> None:
    """``--cluster``, ``--models``, ``--workload`` and ``--policy``."""
    p.add_argument("--cluster", required=True, type=Path, help="cluster.yaml")
    p.add_argument("--models", required=True, type=Path, help="models.yaml")
    p.add_argument("--workload", required=True, type=Path, help="workload.json")
    p.add_argument(
        "--policy", default=DEFAULT_POLICY, help="policy name (see: airflow-fate policies)"
    )


def add_inventory_arg(p: argparse.ArgumentParser) -> None:
    """``--inventory``: which device of this machine backs each cluster GPU."""
    p.add_argument(
        "--inventory",
        type=Path,
        default=None,
        help="inventory.yaml mapping cluster GPUs to devices (default: nvidia-smi, else CPU)",
    )


def check_pod_start(value: float | None) -> None:
    """Raise an `InputError` naming ``--pod-start-s`` unless it is unset or >= 0."""
    if value is not None and not value >= 0:
        raise InputError("--pod-start-s", "", f"must be >= 0, got {value}")


def check_policy(name: str) -> None:
    """Raise an `InputError` naming ``--policy`` unless ``name`` is registered."""
    if name not in policy_names():
        known = ", ".join(policy_names())
        raise InputError("--policy", "", f"unknown policy {name!r} (known: {known})")
