"""How a stage pod tells the launcher which GPUs it actually got (device-plugin mode).

With ``nvidia.com/gpu: k`` the device plugin, not the planner, picks the GPUs. Stage pods
run without an API token, so they cannot annotate themselves; instead the first line of
their log is a marker ``FATE-PLACEMENT <uuid>,<uuid>`` that the launcher reads (it has
``pods/log`` permission) and turns into a ``PLACED`` event. The NVIDIA device plugin's
default (``DEVICE_LIST_STRATEGY=envvar``, ``DEVICE_ID_STRATEGY=uuid``) exports the chosen
UUIDs as ``NVIDIA_VISIBLE_DEVICES``, which the wrapper echoes before exec'ing the task.
"""

from __future__ import annotations

MARKER = "FATE-PLACEMENT"

# bash, not /bin/sh: the Airflow image's entrypoint execs a leading "bash" or "python"
# directly and would otherwise run the argv as an `airflow` sub-command.
_WRAPPER = f'echo "{MARKER} ${{NVIDIA_VISIBLE_DEVICES:-}}"; exec "$@"'


def reporting_command(command: tuple[str, ...]) -> tuple[str, ...]:
    """``command`` wrapped so the container first logs its visible GPU UUIDs."""
    return ("bash", "-c", _WRAPPER, "fate-stage", *command)


def format_marker(uuids: tuple[str, ...]) -> str:
    """The marker line a stage prints for ``uuids`` (used by stages that report themselves)."""
    return f"{MARKER} {','.join(uuids)}"


def parse_marker(log_text: str) -> tuple[str, ...] | None:
    """GPU UUIDs from the first marker line in ``log_text``.

    Returns ``None`` when no marker line has been logged yet, and ``()`` when the marker
    is present but empty (the runtime exported no UUIDs; placement stays unknown).
    """
    for line in log_text.splitlines():
        stripped = line.strip()
        if stripped == MARKER or stripped.startswith(MARKER + " "):
            rest = stripped[len(MARKER) :].strip()
            if rest in ("", "all", "none", "void"):
                return ()
            return tuple(u.strip() for u in rest.split(",") if u.strip())
    return None
