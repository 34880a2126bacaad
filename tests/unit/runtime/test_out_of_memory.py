"""Out-of-memory failures are recognised whichever allocator reports them.

torch's CPU allocator raises a plain ``RuntimeError``; treated as an ordinary error, the
worker would keep running with a damaged allocator and the task log would say "error".
"""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap

import pytest

from airflow_fate.runtime.errors import is_out_of_memory
from airflow_fate.runtime.worker import EXIT_REPLACED


class OutOfMemoryError(RuntimeError):
    """Stands in for ``torch.OutOfMemoryError`` (recognised by name, torch not imported)."""


@pytest.mark.parametrize(
    "exc",
    [
        MemoryError(),
        OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate"
            " memory: you tried to allocate 8257536 bytes. Error code 12"
        ),
        RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"),
        OSError(errno.ENOMEM, "Cannot allocate memory"),
    ],
)
def test_allocator_failures_are_out_of_memory(exc: BaseException) -> None:
    assert is_out_of_memory(exc)


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("shape '[2, 3]' is invalid for input of size 5"),
        ValueError("can't allocate memory"),  # not an allocator's exception class
        OSError(errno.ENOENT, "No such file or directory"),
    ],
)
def test_other_failures_are_not(exc: BaseException) -> None:
    assert not is_out_of_memory(exc)


def test_a_real_torch_cpu_allocation_past_the_address_space_limit_is_recognised() -> None:
    """The message torch prints today is the one the check matches (pinned torch)."""
    script = textwrap.dedent(
        """
        import resource, torch
        from airflow_fate.runtime.errors import is_out_of_memory
        resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, resource.RLIM_INFINITY))
        try:
            torch.empty(2 * 1024**3, dtype=torch.float32).fill_(1.0)
        except BaseException as exc:
            print(type(exc).__name__, is_out_of_memory(exc))
        else:
            print("allocated")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["RuntimeError", "True"], done.stdout + done.stderr


STARVED_WORKER = """
import re, resource
from pathlib import Path
from airflow_fate.runtime.protocol import GenerateTask, ModelSource, RunStage, StageRequest
from airflow_fate.runtime.worker import Worker

class CrashingRuntime:
    def run(self, msg):
        raise {exc}

    def drop_all(self):
        pass

source = ModelSource(name="m", kind="causal-lm", directory="/nowhere", weights_bytes=1)
request = StageRequest(model=source, task=GenerateTask(prompts=["hi"]), kv_tokens=10)
msg = RunStage(key="k", devices=["cpu0"], request=request)
worker = object.__new__(Worker)
worker.runtime = CrashingRuntime()
if {starve}:
    [kib] = re.findall(r"^VmSize:\\s+(\\d+) kB", Path("/proc/self/status").read_text(), re.M)
    resource.setrlimit(resource.RLIMIT_AS, (int(kib) * 1024, resource.RLIM_INFINITY))
failure, restart = worker._execute(msg)
print(failure.reason, failure.restart, restart)
"""


@pytest.mark.parametrize(
    ("exc", "starve", "expected"),
    [
        # what a stage raised when its allocation failed in native code (seen for real)
        ("SystemError('error return without exception set')", True, "out-of-memory True True"),
        ("ValueError('bad template')", True, "out-of-memory True True"),
        ("ValueError('bad template')", False, "error False False"),
        ("SystemError('error return without exception set')", False, "error True True"),
    ],
    ids=["system-error-starved", "any-error-starved", "plain-error", "system-error"],
)
def test_worker_classifies_a_crashed_stage_by_whether_it_can_still_allocate(
    exc: str, starve: bool, expected: str
) -> None:
    """A failure in a process that cannot allocate is out of memory, whatever it says."""
    script = STARVED_WORKER.format(exc=exc, starve=starve)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == expected, done.stdout + done.stderr


def test_a_replaced_worker_exits_with_its_status_and_skips_teardown() -> None:
    """Finalizers in a process that ran out of memory can abort or hang it; the replaced
    worker's exit must not depend on them, and its last log line must still be written."""
    script = textwrap.dedent(
        """
        import atexit, logging, sys
        from airflow_fate.runtime.worker import exit_replaced
        logging.basicConfig(stream=sys.stderr, level=logging.INFO)
        atexit.register(lambda: print("teardown ran", flush=True))
        logging.getLogger("worker").error("exiting to be replaced")
        exit_replaced()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_REPLACED, done.stderr
    assert "teardown ran" not in done.stdout
    assert "exiting to be replaced" in done.stderr
