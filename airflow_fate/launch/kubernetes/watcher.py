"""One pod watch per namespace, resuming from resourceVersion, re-listing on 410 Gone.

The watcher runs in its own thread and only observes: it hands raw pod objects (as JSON
dicts) to a sink, and the launcher interprets them on the scheduler's thread in
``poll()``. That keeps all bookkeeping single-threaded.

Protocol, as the API server defines it:

1. ``list`` the pods (label-selected) and remember the list's resourceVersion; hand the
   whole list to the sink as a `PodSnapshot` so pods that changed while nobody watched
   are reconciled.
2. ``watch`` from that resourceVersion with ``timeoutSeconds``; every event advances the
   resourceVersion; when the server closes the stream, watch again from there.
3. A dropped connection or a 5xx/429 backs off and resumes from the same version.
4. ``410 Gone`` (the version was compacted away) starts again at step 1.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch  # type: ignore[import-untyped,import-not-found,unused-ignore]
from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped,import-not-found,unused-ignore]

from airflow_fate.launch.kubernetes.api import failure_of
from airflow_fate.launch.kubernetes.retry import backoff_delay
from airflow_fate.launch.kubernetes.settings import RetrySettings

log = logging.getLogger(__name__)

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PodEvent:
    """One watch event: ``ADDED``, ``MODIFIED`` or ``DELETED`` and the pod after it."""

    namespace: str
    type: str
    pod: Json


@dataclass(frozen=True, slots=True)
class PodSnapshot:
    """Every selected pod of a namespace at one resourceVersion (after a (re-)list)."""

    namespace: str
    pods: tuple[Json, ...]
    resource_version: str


Observation = PodEvent | PodSnapshot


class PodWatcher:
    """Watches the pods matching ``label_selector`` in one namespace.

    Args:
        api_client: a client of its own (not shared with the scheduler thread).
        namespace: the namespace to watch.
        label_selector: which pods (this executor's live pods).
        sink: receives observations; called on the watcher thread.
        watch_timeout_s: server-side ``timeoutSeconds`` of each watch request.
        request_timeout_s: client-side connect/read timeout (read adds the watch timeout).
        retry: backoff for failures.
        wait: sleeps for a delay; returns early (``True``) when the watcher is stopped.
            Defaults to the stop event's ``wait``; tests inject their own.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        label_selector: str,
        sink: Callable[[Observation], None],
        *,
        watch_timeout_s: int,
        request_timeout_s: float,
        retry: RetrySettings,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.namespace = namespace
        self.label_selector = label_selector
        self._core = client.CoreV1Api(api_client)
        self._sink = sink
        self._watch_timeout_s = watch_timeout_s
        self._request_timeout_s = request_timeout_s
        self._retry = retry
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._thread: threading.Thread | None = None
        self._watch: watch.Watch | None = None
        self._response: Any = None
        self.resource_version: str | None = None
        self.failures = 0
        self.relists = 0

    def start(self) -> None:
        """Start the watch thread (idempotent)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"fate-pod-watch-{self.namespace}", daemon=True
        )
        self._thread.start()

    def stop(self, join_timeout_s: float = 5.0) -> None:
        """Stop the thread: end the open watch at once and wait up to ``join_timeout_s``."""
        self._stop.set()
        current = self._watch
        if current is not None:
            current.stop()
        response = self._response
        if response is not None:
            # Unblocks the watch thread's read; otherwise it waits for the next event or
            # the server-side timeout.
            with contextlib.suppress(Exception):
                response.shutdown()
        if self._thread is not None:
            self._thread.join(join_timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the thread must survive anything and keep watching
                log.exception("pod watch of namespace %s crashed; restarting", self.namespace)
                self.resource_version = None
                self._backoff(None)

    def run_once(self) -> None:
        """One cycle: (re-)list if needed, then one watch request until it ends or fails."""
        if self.resource_version is None and not self._relist():
            return
        started = time.monotonic()
        try:
            events = self._stream()
            if events == 0 and time.monotonic() - started < 1.0 and not self._stop.is_set():
                # A watch that ends at once with nothing is a misbehaving server or proxy;
                # back off rather than spin.
                self._backoff(None)
            else:
                self.failures = 0
        except ApiException as exc:
            if exc.status == 410:
                log.info("watch of %s: resourceVersion expired (410); re-listing", self.namespace)
                self.resource_version = None
                return
            self._on_failure(exc)
        except Exception as exc:
            if failure_of(exc) is None:
                raise
            self._on_failure(exc)

    def _relist(self) -> bool:
        try:
            response = self._core.list_namespaced_pod(
                self.namespace,
                label_selector=self.label_selector,
                _request_timeout=self._request_timeout_s,
                _preload_content=False,
            )
            body = json.loads(response.data)
        except Exception as exc:
            if failure_of(exc) is None:
                raise
            self._on_failure(exc)
            return False
        pods = tuple(p for p in body.get("items") or [] if isinstance(p, dict))
        rv = str((body.get("metadata") or {}).get("resourceVersion") or "")
        if not rv:
            raise ValueError(f"pod list of {self.namespace} carries no resourceVersion")
        self.relists += 1
        self.failures = 0
        if self._stop.is_set():
            return False
        self._sink(PodSnapshot(self.namespace, pods, rv))
        self.resource_version = rv
        return True

    def _open(self, *args: Any, **kwargs: Any) -> Any:
        """``list_namespaced_pod`` that keeps the raw response, so `stop` can cut it."""
        response = self._core.list_namespaced_pod(*args, **kwargs)
        self._response = response
        if self._stop.is_set():
            # `stop` ran while the request was in flight and found no response to cut;
            # cut it here, or the read below would block until the server-side timeout.
            with contextlib.suppress(Exception):
                response.shutdown()
        return response

    def _stream(self) -> int:
        """One watch request; returns how many events it delivered."""
        w = watch.Watch(return_type="V1Pod")
        self._watch = w
        delivered = 0
        try:
            stream = w.stream(
                self._open,
                self.namespace,
                label_selector=self.label_selector,
                resource_version=self.resource_version,
                timeout_seconds=self._watch_timeout_s,
                allow_watch_bookmarks=True,
                _request_timeout=(self._request_timeout_s, self._watch_timeout_s + 10),
            )
            for event in stream:
                if self._stop.is_set():
                    w.stop()
                    break
                if not isinstance(event, dict):  # blank keep-alive lines parse to None
                    continue
                kind = str(event["type"])
                if kind == "BOOKMARK":
                    self.resource_version = w.resource_version or self.resource_version
                    continue
                raw = event.get("raw_object")
                pod: Json = raw if isinstance(raw, dict) else {}
                rv = (pod.get("metadata") or {}).get("resourceVersion")
                self._sink(PodEvent(self.namespace, kind, pod))
                delivered += 1
                if rv:
                    self.resource_version = str(rv)
        finally:
            self._watch = None
            self._response = None
        return delivered

    def _on_failure(self, exc: BaseException) -> None:
        if self._stop.is_set():
            return  # stop() cut the connection on purpose
        failure = failure_of(exc)
        log.warning(
            "watch of %s failed (%s); resuming from resourceVersion %s",
            self.namespace,
            failure.describe() if failure else exc,
            self.resource_version,
        )
        self._backoff(failure.retry_after_s if failure else None)

    def _backoff(self, retry_after_s: float | None) -> None:
        delay = backoff_delay(self.failures, self._retry, retry_after_s)
        self.failures += 1
        self._wait(delay)
