"""The ``airflow-fate`` command line: one module per command under this package.

Each command module exposes ``register(subparsers)`` that adds its parser and sets
``func``; `main` dispatches. A user-facing `InputError` prints one line naming the file,
path and reason and exits with code 2. An `UnrunStagesError` (a run left stages unrun)
prints its one line, which names the policy, the stages and why, and exits with code 1.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from airflow_fate import __version__
from airflow_fate.cli import (
    bench,
    bench_planner,
    calibrate,
    demo,
    policies,
    replay,
    run,
    schema,
    simulate,
    workload,
)
from airflow_fate.cli.common import HelpFormatter
from airflow_fate.errors import InputError, UnrunStagesError

COMMANDS = [
    simulate,
    policies,
    schema,
    workload,
    run,
    calibrate,
    bench,
    bench_planner,
    demo,
    replay,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-fate",
        description="Future-state-aware GPU scheduling of multi-stage LLM pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    _plain_help(parser)
    return parser


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Give every (nested) command parser the shared plain-text `HelpFormatter`."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _plain_help(child)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except UnrunStagesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
