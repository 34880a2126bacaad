"""``airflow-fate schema cluster|models|workload``: print an input format's JSON Schema."""

from __future__ import annotations

import argparse
import json
from typing import Any

from airflow_fate.domain.schema import SCHEMAS, json_schema


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "schema", help="print the JSON Schema of an input format"
    )
    p.add_argument("format", choices=sorted(SCHEMAS))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(args.format), indent=2, sort_keys=True))
    return 0
