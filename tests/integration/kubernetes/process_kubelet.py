"""A kubelet for the fake API server that runs each pod's container as a local process.

`FakeKubelet` only moves pods through their phases by hand; `ProcessKubelet` runs them:
a thread follows the fake server's pods and, for each new one,

* schedules it: binds it to the node its ``nodeSelector`` (``kubernetes.io/hostname``)
  names; a pod pinned to no node or to one not in ``nodes`` stays Pending and is marked
  unschedulable (stage pods are always pinned);
* in DRA mode, allocates its ResourceClaims the way a DRA driver would: the devices
  whose UUIDs the claim's CEL selector names, written to the claim's status and exposed
  to the container as ``NVIDIA_VISIBLE_DEVICES`` (what the driver's CDI spec injects);
  a pod whose claim is missing stays Pending, as on a real node;
* starts the base container's ``command`` + ``args`` as a subprocess (in its own
  session) with a minimal environment plus the container's ``env`` (literal values,
  ``secretKeyRef`` from the server's Secrets, ``fieldRef`` for the pod's IP, name,
  namespace and node), gives the pod an IP of its own on the loopback network
  (``127.x.y.n``, so several pods can listen on one port, as pods do), marks the pod
  Running, and serves the process's output as the pod log;
* marks the pod Succeeded or Failed with the process's exit code when it exits;
* on graceful deletion (``deletionTimestamp``) stops the process group (SIGTERM, then
  SIGKILL after the pod's grace period, capped) and confirms the deletion.

Like a container runtime, it ends *every* process of a pod when the pod ends, not only
the main one: each pod's processes carry a marker in their environment (inherited by
everything they start, whatever session), and the kubelet kills what still carries it
after the main process is gone. `oom_kill` plays the kernel's out-of-memory killer on a
pod (every process SIGKILLed, the pod Failed with ``OOMKilled``).

A pod it cannot run (an ``env`` entry without a literal value, a missing executable)
fails with ``RunContainerError`` and is listed in ``errors``. `stop` stops every process
it started; nothing outlives it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fake_apiserver import FakeApiServer, FakeKubelet, Json

HOSTNAME_LABEL = "kubernetes.io/hostname"
POD_MARKER_ENV = "PROCESS_KUBELET_POD"
"""Environment variable naming the pod in every process it runs (see the docstring)."""
MAX_GRACE_S = 10.0
"""Cap on a deleted pod's grace period, so a stuck process cannot stall a test."""

_CEL_STRINGS = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class PodRun:
    """One pod the kubelet ran: what it started, with which environment, and the outcome.

    Attributes:
        namespace: the pod's namespace.
        name: the pod's name.
        node: the node it was bound to.
        argv: the container's command line as started.
        env: the process's whole environment.
        visible_devices: devices of its allocated DRA claims (empty without DRA).
        log_path: where its stdout and stderr went.
        exit_code: the exit code; None while it runs.
        killed: whether it was stopped because its pod was deleted.
    """

    namespace: str
    name: str
    node: str
    argv: list[str]
    env: dict[str, str]
    visible_devices: tuple[str, ...]
    log_path: Path
    popen: subprocess.Popen[bytes] = field(repr=False)
    exit_code: int | None = None
    killed: bool = False
    ip: str = ""
    marker: str = ""
    uid: str = ""
    reason: str = ""
    """Why the kubelet ended it (``OOMKilled``), for the pod's status."""

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


class ProcessKubelet:
    """Runs the fake server's pods as local processes; see the module docstring.

    Args:
        api: the fake API server.
        base_env: the process environment before the container's ``env`` is added
            (what the image would provide: ``PATH``, ``HOME``...). Nothing else of the
            test's own environment leaks into the pods.
        log_dir: where each pod's output is written (``<namespace>_<pod>.log``).
        nodes: the nodes that exist; a pod pinned elsewhere stays unschedulable.
            None accepts any node.
        interval_s: how long the loop waits for a change before looking again (it
            wakes at once when the server's store changes).
    """

    def __init__(
        self,
        api: FakeApiServer,
        base_env: Mapping[str, str],
        log_dir: Path,
        nodes: set[str] | None = None,
        interval_s: float = 0.1,
    ) -> None:
        self.api = api
        self.base_env = dict(base_env)
        self.log_dir = log_dir
        self.nodes = nodes
        self.interval_s = interval_s
        self.runs: dict[tuple[str, str], PodRun] = {}
        self.past_runs: list[PodRun] = []
        """Runs of pods whose name a newer pod took (a worker pod created again)."""
        self.errors: list[str] = []
        self._states = FakeKubelet(api)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="process-kubelet", daemon=True)
        self._log_sizes: dict[tuple[str, str], int] = {}
        self._broken: set[tuple[str, str]] = set()
        self._ip_prefix = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}."
        self._next_ip = 2

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> ProcessKubelet:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop the loop, then every process still running (group SIGTERM, then SIGKILL)."""
        self._stopping.set()
        with self.api.store.cond:
            self.api.store.cond.notify_all()
        self._thread.join(30)
        for run in [*self.past_runs, *self.runs.values()]:
            if run.popen.poll() is None:
                _stop_group(run.popen, grace_s)
                run.killed = True
            _kill_marked(run.marker)
            run.exit_code = run.popen.returncode

    def __enter__(self) -> ProcessKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> list[str]:
        """Pods whose process still runs."""
        return [run.name for run in self.runs.values() if run.popen.poll() is None]

    def oom_kill(self, namespace: str, name: str) -> PodRun:
        """Kill every process of a running pod as the out-of-memory killer would."""
        run = self.runs[(namespace, name)]
        run.reason = "OOMKilled"
        _kill_marked(run.marker)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.popen.pid, signal.SIGKILL)
        return run

    # -- the loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        seen_rv = -1
        while not self._stopping.is_set():
            with self.api.store.cond:
                self.api.store.cond.wait_for(
                    lambda rv=seen_rv: self.api.store.rv != rv or self._stopping.is_set(),
                    timeout=self.interval_s,
                )
                seen_rv = self.api.store.rv
            try:
                self._sync()
            except Exception as exc:  # keep serving; the test reads `errors`
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _sync(self) -> None:
        for pod in self.api.objects("pods"):
            meta = pod["metadata"]
            key = (meta["namespace"], meta["name"])
            run = self.runs.get(key)
            if run is not None and run.uid != meta.get("uid"):
                self.past_runs.append(self.runs.pop(key))  # a new pod with an old name
                self._broken.discard(key)
                run = None
            if meta.get("deletionTimestamp"):
                self._delete(pod, run)
            elif run is None and key not in self._broken:
                if (pod.get("status") or {}).get("phase") == "Pending":
                    self._try_start(pod)
            elif run is not None:
                self._refresh(run)
        for run in self.runs.values():
            if run.exit_code is None and run.popen.poll() is not None:
                self._finished(run)

    def _try_start(self, pod: Json) -> None:
        """Start the pod; a pod this kubelet cannot run fails (as ``RunContainerError``)."""
        meta = pod["metadata"]
        try:
            self._schedule_and_start(pod)
        except (OSError, ValueError, KeyError) as exc:
            self._broken.add((meta["namespace"], meta["name"]))
            self.errors.append(f"pod {meta['name']}: {type(exc).__name__}: {exc}")
            self._states.fail(meta["namespace"], meta["name"], code=128, reason="RunContainerError")

    def _schedule_and_start(self, pod: Json) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        ns, name = meta["namespace"], meta["name"]
        node = (spec.get("nodeSelector") or {}).get(HOSTNAME_LABEL)
        if node is None or (self.nodes is not None and node not in self.nodes):
            conditions = (pod.get("status") or {}).get("conditions") or []
            if not any(c.get("reason") == "Unschedulable" for c in conditions):
                self._states.unschedulable(
                    ns, name, f"0/{len(self.nodes or ())} nodes match the pod's node selector"
                )
            return
        devices = self._allocate_claims(pod, node)
        if devices is None:
            return  # a claim is not there yet: the pod waits, as on a real node
        if not spec.get("nodeName"):
            self._states.bind(ns, name)
        self._start(pod, node, devices)

    def _allocate_claims(self, pod: Json, node: str) -> tuple[str, ...] | None:
        """Allocate the pod's ResourceClaims; their devices, or None if one is missing."""
        devices: list[str] = []
        ns = pod["metadata"]["namespace"]
        for ref in pod["spec"].get("resourceClaims") or []:
            claim_name = ref.get("resourceClaimName")
            if not claim_name:
                raise ValueError(f"pod {pod['metadata']['name']}: unsupported claim {ref}")
            claim = self.api.get("resourceclaims", ns, claim_name)
            if claim is None:
                return None
            chosen = _claim_devices(claim)
            if not (claim.get("status") or {}).get("allocation"):
                self.api.mutate(
                    "resourceclaims", ns, claim_name, lambda c, n=node, d=chosen: _allocate(c, n, d)
                )
            devices.extend(chosen)
        return tuple(devices)

    def _start(self, pod: Json, node: str, devices: tuple[str, ...]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        ns, name = meta["namespace"], meta["name"]
        container = spec["containers"][0]
        # Without ``command`` the image's entrypoint runs ``args``; the Airflow image's
        # entrypoint executes them, so ``args`` alone is the command line.
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        ip = f"{self._ip_prefix}{self._next_ip}"
        env = dict(self.base_env)
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
                continue
            value = self._value_from(pod, var, ip, node)
            if value is None:
                return  # a Secret not there yet: the container waits, as on a node
            env[var["name"]] = value
        self._next_ip += 1
        marker = f"{ns}/{name}/{meta.get('uid', '')}"
        env[POD_MARKER_ENV] = marker
        if devices:
            env["NVIDIA_VISIBLE_DEVICES"] = ",".join(devices)
        log_path = self.log_dir / f"{ns}_{name}.log"
        again = sum(1 for r in self.past_runs if (r.namespace, r.name) == (ns, name))
        if again:
            log_path = log_path.with_suffix(f".{again}.log")
        with log_path.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                env=env,
                cwd=self.log_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.runs[(ns, name)] = PodRun(
            ns,
            name,
            node,
            argv,
            env,
            devices,
            log_path,
            popen,
            ip=ip,
            marker=marker,
            uid=meta.get("uid", ""),
        )
        self._states.run(ns, name, pod_ip=ip)

    def _value_from(self, pod: Json, var: Json, ip: str, node: str) -> str | None:
        """An ``env`` entry's ``valueFrom``; None while its Secret does not exist."""
        source = var.get("valueFrom") or {}
        if "fieldRef" in source:
            fields = {
                "status.podIP": ip,
                "metadata.name": pod["metadata"]["name"],
                "metadata.namespace": pod["metadata"]["namespace"],
                "spec.nodeName": node,
            }
            path = source["fieldRef"].get("fieldPath")
            if path not in fields:
                raise ValueError(f"env {var.get('name')}: unsupported fieldRef {path}")
            return fields[path]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = self.api.get("secrets", pod["metadata"]["namespace"], ref["name"])
            if secret is None:
                return None
            encoded = (secret.get("data") or {}).get(ref["key"])
            if encoded is None:
                raise ValueError(f"env {var.get('name')}: secret {ref['name']} has no {ref['key']}")
            return base64.b64decode(encoded).decode("utf-8")
        raise ValueError(f"env {var.get('name')} has no value the kubelet can resolve")

    def _refresh(self, run: PodRun) -> None:
        """Serve the output written so far as the pod log (``kubectl logs``)."""
        key = (run.namespace, run.name)
        size = run.log_path.stat().st_size
        if size != self._log_sizes.get(key):
            self._log_sizes[key] = size
            with self.api.store.cond:
                if self.api.get("pods", run.namespace, run.name) is not None:
                    self.api.store.logs[key] = run.log()

    def _finished(self, run: PodRun) -> None:
        run.exit_code = run.popen.returncode
        _kill_marked(run.marker)  # the container ends with its main process
        pod = self.api.get("pods", run.namespace, run.name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        self._refresh(run)
        if run.exit_code == 0:
            self._states.succeed(run.namespace, run.name)
        else:
            code = run.exit_code if run.exit_code > 0 else 128 - run.exit_code
            self._states.fail(run.namespace, run.name, code=code, reason=run.reason or "Error")

    def _delete(self, pod: Json, run: PodRun | None) -> None:
        meta = pod["metadata"]
        if run is not None and run.popen.poll() is None:
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            _stop_group(run.popen, min(grace, MAX_GRACE_S))
            run.killed = True
            run.exit_code = run.popen.returncode
        if run is not None:
            _kill_marked(run.marker)
        with self.api.store.cond:
            if self.api.store.objects.get(("pods", meta["namespace"], meta["name"])):
                self.api.store.remove("pods", meta["namespace"], meta["name"])


def _claim_devices(claim: Json) -> tuple[str, ...]:
    """The UUIDs a claim's CEL selectors name (``...uuid in ["GPU-a", "GPU-b"]``)."""
    out: list[str] = []
    for request in claim["spec"]["devices"]["requests"]:
        exactly = request.get("exactly") or {}
        for selector in exactly.get("selectors") or []:
            expression = selector["cel"]["expression"]
            _, _, listed = expression.partition(".uuid in ")
            out.extend(_CEL_STRINGS.findall(listed))
        if len(out) != int(exactly.get("count", 1)):
            raise ValueError(f"claim {claim['metadata']['name']}: cannot allocate {exactly}")
    return tuple(out)


def _allocate(claim: Json, node: str, devices: tuple[str, ...]) -> None:
    request = claim["spec"]["devices"]["requests"][0]
    claim["status"] = {
        "allocation": {
            "devices": {
                "results": [
                    {
                        "request": request["name"],
                        "driver": "gpu.nvidia.com",
                        "pool": node,
                        "device": uuid,
                    }
                    for uuid in devices
                ]
            },
            "nodeSelector": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                ]
            },
        }
    }


def _stop_group(popen: subprocess.Popen[bytes], grace_s: float) -> None:
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(wait_s)
            return


def _kill_marked(marker: str) -> None:
    """SIGKILL every process whose environment carries ``marker`` (a pod's leftovers)."""
    if not marker:
        return
    needle = b"\0" + f"{POD_MARKER_ENV}={marker}".encode() + b"\0"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = b"\0" + (proc / "environ").read_bytes() + b"\0"
        except OSError:
            continue
        if needle in environ:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(proc.name), signal.SIGKILL)


def image_environment(home: Path) -> dict[str, str]:
    """The environment the stage image gives a container before the pod's own ``env``.

    * ``PATH``: this interpreter's directory first, so the container's ``python`` is the
      one that has Airflow and airflow-fate installed (the image's Python), then the
      system's for anything else.
    * ``HOME`` and ``AIRFLOW_HOME``: a directory of the "container's" own, so a task
      process never reads or writes the scheduler's home, configuration or database,
      exactly as in a pod (it must reach the API server through the pod template's
      ``AIRFLOW__CORE__EXECUTION_API_SERVER_URL``).
    * ``LANG``: a UTF-8 locale, as the Airflow image sets.

    ``PYTHONPATH`` is not needed: airflow-fate is installed in the interpreter.
    """
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        "HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "LANG": "C.UTF-8",
    }


__all__ = ["PodRun", "ProcessKubelet", "image_environment"]
