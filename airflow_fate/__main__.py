"""``python -m airflow_fate`` runs the CLI."""

from __future__ import annotations

import sys

from airflow_fate.cli import main

sys.exit(main())
