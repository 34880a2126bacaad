"""An in-process fake Kubernetes API server for tests (stdlib ``http.server``, real HTTP).

The official ``kubernetes`` client talks to it over 127.0.0.1, so the client's request
building, JSON (de)serialisation, chunked watch parsing and error handling all run for
real. It implements the slice of the API the launcher and inventory discovery use, with
the server behaviour that matters to them:

* pods, configmaps, secrets, nodes and ``resource.k8s.io/v1`` resourceclaims: create (409 when the
  name exists), get, list, delete, patch (merge, strategic-merge as merge, JSON Patch; a
  JSON-Patch content type with an object body is refused as the real server does);
* label selectors (``=``, ``==``, ``!=``, ``in``, ``notin``, ``k``, ``!k``) and field
  selectors (``metadata.name``, ``metadata.namespace``, ``status.phase``,
  ``spec.nodeName``);
* ``/status`` (get, put, patch) and ``/log`` (``limitBytes``; 400 while the container is
  waiting, like the kubelet);
* server defaults on create (uid, creationTimestamp, resourceVersion, pod status
  ``Pending`` and spec defaults), monotonically increasing resourceVersions;
* watch: ``resourceVersion`` resume, initial ADDED events without one, ``timeoutSeconds``,
  filtered-watch semantics (an object that stops matching the selector is sent as
  DELETED, one that starts matching as ADDED), ``410 Gone`` as an ERROR event after a
  simulated compaction, and dropped connections on demand;
* graceful pod deletion: ``deletionTimestamp`` first (MODIFIED), DELETED when the kubelet
  confirms, immediately for unbound or finished pods or ``gracePeriodSeconds=0``;
* injected faults (409/429 with ``Retry-After``/500/any) for the next N matching calls.

`FakeKubelet` plays the node agent: binds, runs, finishes, fails pods and writes logs.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

Json = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES = {
    "pods": ResourceType("", "v1", "pods", "Pod", True),
    "configmaps": ResourceType("", "v1", "configmaps", "ConfigMap", True),
    "nodes": ResourceType("", "v1", "nodes", "Node", False),
    "secrets": ResourceType("", "v1", "secrets", "Secret", True),
    "resourceclaims": ResourceType(
        "resource.k8s.io", "v1", "resourceclaims", "ResourceClaim", True
    ),
}

TERMINAL_PHASES = ("Succeeded", "Failed")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error the server answers with a ``Status`` object."""

    def __init__(
        self, code: int, reason: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.headers = headers or {}

    def status(self) -> Json:
        return status_object(self.code, self.reason, self.message)


def status_object(code: int, reason: str, message: str) -> Json:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


# -- selectors -------------------------------------------------------------------------


def _split_terms(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


_SET_TERM = re.compile(r"^(\S+)\s+(in|notin)\s+\((.*)\)$")


def label_matcher(selector: str | None) -> Callable[[dict[str, str]], bool]:
    """Compile a label selector; raises `ApiError` 400 on bad syntax."""
    if not selector:
        return lambda labels: True
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(selector):
        m = _SET_TERM.match(term)
        if m:
            key, op, raw = m.groups()
            values = {v.strip() for v in raw.split(",") if v.strip()}
            if op == "in":
                checks.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                checks.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif term.startswith("!"):
            absent = term[1:].strip()
            checks.append(lambda lb, k=absent: k not in lb)
        elif "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
        elif "=" in term:
            key, value = (p.strip() for p in term.replace("==", "=").split("=", 1))
            checks.append(lambda lb, k=key, v=value: lb.get(k) == v)
        elif re.match(r"^[A-Za-z0-9./_-]+$", term):
            checks.append(lambda lb, k=term: k in lb)
        else:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
    return lambda labels: all(check(labels) for check in checks)


_FIELDS = {"metadata.name", "metadata.namespace", "status.phase", "spec.nodeName"}


def field_matcher(selector: str | None) -> Callable[[Json], bool]:
    if not selector:
        return lambda obj: True
    checks: list[Callable[[Json], bool]] = []
    for term in _split_terms(selector):
        negate = "!=" in term
        key, value = (p.strip() for p in re.split(r"!=|==|=", term, maxsplit=1))
        if key not in _FIELDS:
            raise ApiError(400, "BadRequest", f'field label not supported: "{key}"')

        def check(obj: Json, k: str = key, v: str = value, neg: bool = negate) -> bool:
            cur: Any = obj
            for part in k.split("."):
                cur = cur.get(part) if isinstance(cur, dict) else None
            actual = "" if cur is None else str(cur)
            return (actual != v) if neg else (actual == v)

        checks.append(check)
    return lambda obj: all(c(obj) for c in checks)


# -- patches ---------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(target: Json, ops: list[Any]) -> Json:
    """RFC 6902 subset: add, replace, remove, test."""
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(422, "Invalid", f"malformed JSON Patch operation {op!r}")
        parts = _pointer(op["path"])
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        kind = op["op"]
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                else:
                    parent[index] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise ApiError(422, "Invalid", f"path {op['path']} does not exist")
                parent[last] = op["value"]
        elif kind == "remove":
            try:
                del parent[int(last) if isinstance(parent, list) else last]
            except (KeyError, IndexError):
                raise ApiError(422, "Invalid", f"path {op['path']} does not exist") from None
        elif kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise ApiError(422, "Invalid", f"test failed at {op['path']}")
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON Patch op {kind!r}")
    return doc


# -- storage ---------------------------------------------------------------------------


@dataclass
class StoredEvent:
    rv: int
    resource: str
    namespace: str | None
    type: str  # ADDED, MODIFIED, DELETED
    old: Json | None
    new: Json


@dataclass
class Fault:
    """Answer the next ``times`` matching calls with ``status`` instead of serving them."""

    method: str
    resource: str
    status: int
    times: int = 1
    subresource: str | None = None
    watch: bool | None = None
    retry_after: str | None = None
    message: str = "injected fault"
    reason: str | None = None

    def matches(self, method: str, resource: str, subresource: str | None, watch: bool) -> bool:
        return (
            self.times > 0
            and self.method == method
            and self.resource == resource
            and self.subresource == subresource
            and (self.watch is None or self.watch == watch)
        )


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any


class Store:
    """Objects, resourceVersions and the event history that watches replay."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.rv = 100
        self.objects: dict[tuple[str, str | None, str], Json] = {}
        self.history: list[StoredEvent] = []
        self.compacted_rv = 0
        self.logs: dict[tuple[str, str], str] = {}

    def _bump(self, obj: Json) -> int:
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        return self.rv

    def record(self, resource: str, ns: str | None, kind: str, old: Json | None, new: Json) -> None:
        rv = int(new["metadata"]["resourceVersion"])
        self.history.append(StoredEvent(rv, resource, ns, kind, old, copy.deepcopy(new)))
        self.cond.notify_all()

    def create(self, resource: str, ns: str | None, obj: Json) -> Json:
        rtype = RESOURCES[resource]
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise ApiError(422, "Invalid", f"{rtype.kind}: metadata.name: Required value")
        if rtype.namespaced:
            if meta.get("namespace") not in (None, ns):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace "
                    "sent on the request",
                )
            meta["namespace"] = ns
        key = (resource, ns, meta["name"])
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{resource} "{meta["name"]}" already exists')
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        meta.pop("deletionTimestamp", None)
        if resource == "pods":
            _default_pod(obj)
        self._bump(obj)
        self.objects[key] = obj
        self.record(resource, ns, "ADDED", None, obj)
        return copy.deepcopy(obj)

    def get(self, resource: str, ns: str | None, name: str) -> Json:
        obj = self.objects.get((resource, ns, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
        return obj

    def update(self, resource: str, ns: str | None, name: str, new: Json) -> Json:
        old = self.get(resource, ns, name)
        new = copy.deepcopy(new)
        # Fields owned by the server survive any update.
        for k in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp"):
            if k in old["metadata"]:
                new.setdefault("metadata", {})[k] = old["metadata"][k]
        if resource in ("pods", "resourceclaims") and old.get("spec") != new.get("spec"):
            _check_spec_update(resource, old, new)
        before = copy.deepcopy(old)
        self._bump(new)
        self.objects[(resource, ns, name)] = new
        self.record(resource, ns, "MODIFIED", before, new)
        return copy.deepcopy(new)

    def remove(self, resource: str, ns: str | None, name: str) -> Json:
        obj = self.objects.pop((resource, ns, name))
        before = copy.deepcopy(obj)
        self._bump(obj)
        self.record(resource, ns, "DELETED", before, obj)
        self.logs.pop((ns or "", name), None)
        return copy.deepcopy(obj)

    def delete(self, resource: str, ns: str | None, name: str, grace: int | None) -> Json:
        obj = self.get(resource, ns, name)
        if resource != "pods":
            return self.remove(resource, ns, name)
        meta = obj["metadata"]
        bound = bool((obj.get("spec") or {}).get("nodeName"))
        finished = (obj.get("status") or {}).get("phase") in TERMINAL_PHASES
        if not meta.get("deletionTimestamp"):
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            period = 30 if grace is None else grace
            if not bound or finished:
                period = 0
            new["metadata"]["deletionGracePeriodSeconds"] = period
            obj = self.update(resource, ns, name, new)
            if period > 0:
                return obj
        return self.remove(resource, ns, name)


def _default_pod(pod: Json) -> None:
    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("serviceAccountName", "default")
    for c in spec.get("containers") or []:
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = str(c.get("image", ""))
        c.setdefault("imagePullPolicy", "Always" if image.endswith(":latest") else "IfNotPresent")
    pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def _check_spec_update(resource: str, old: Json, new: Json) -> None:
    if resource == "resourceclaims":
        raise ApiError(422, "Invalid", "ResourceClaim.spec: field is immutable")
    # Pods: only a few spec fields are mutable; nodeName may be set once (binding).
    old_spec, new_spec = dict(old.get("spec") or {}), dict(new.get("spec") or {})
    if not old_spec.get("nodeName"):
        old_spec.pop("nodeName", None)
        new_spec.pop("nodeName", None)
    for mutable in ("activeDeadlineSeconds", "tolerations"):
        old_spec.pop(mutable, None)
        new_spec.pop(mutable, None)
    for spec in (old_spec, new_spec):
        for c in spec.get("containers") or []:
            c.pop("image", None)
    if old_spec != new_spec:
        raise ApiError(422, "Invalid", "Pod spec: Forbidden: pod updates may not change fields")


# -- HTTP ------------------------------------------------------------------------------


@dataclass
class Route:
    resource: str
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_path(path: str) -> Route:
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if parts[:2] == ["api", "v1"]:
        rest = parts[2:]
        group_version = ("", "v1")
    elif len(parts) >= 3 and parts[0] == "apis":
        rest = parts[3:]
        group_version = (parts[1], parts[2])
    else:
        raise ApiError(404, "NotFound", f"the server could not find the requested path {path}")
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace = rest[1]
        rest = rest[2:]
    if not rest or rest[0] not in RESOURCES:
        raise ApiError(404, "NotFound", f"the server could not find the requested path {path}")
    rtype = RESOURCES[rest[0]]
    if (rtype.group, rtype.version) != group_version or rtype.namespaced != (namespace is not None):
        raise ApiError(404, "NotFound", f"the server could not find the requested path {path}")
    return Route(
        resource=rest[0],
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource=rest[2] if len(rest) > 2 else None,
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ApiError(400, "BadRequest", f"malformed JSON body: {exc}") from None

    def _send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, code: int, text: str) -> None:
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        api = self.server.api
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            body = self._body()
            api.requests.append(
                RecordedRequest(method, split.path, query, self.headers.get("Content-Type"), body)
            )
            route = parse_path(split.path)
            watching = method == "GET" and _go_bool(query.get("watch"))
            api.raise_fault(method, route, watching)
            if watching and route.name is None:
                self._watch(route, query)
                return
            result = api.serve(method, route, query, body, self.headers.get("Content-Type"))
            if isinstance(result, str):
                self._send_text(200, result)
            else:
                code, obj = result
                self._send_json(code, obj)
        except ApiError as err:
            self._send_json(err.code, err.status(), err.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _watch(self, route: Route, query: dict[str, str]) -> None:
        api = self.server.api
        store = api.store
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"))
        timeout = float(query.get("timeoutSeconds") or api.default_watch_timeout_s)

        def matches(obj: Json | None) -> bool:
            return obj is not None and labels(obj["metadata"].get("labels") or {}) and fields(obj)

        def in_scope(ev: StoredEvent) -> bool:
            return ev.resource == route.resource and (
                route.namespace is None or ev.namespace == route.namespace
            )

        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        api.active_watches += 1
        generation = api.drop_generation
        try:
            with store.cond:
                rv_text = query.get("resourceVersion") or ""
                initial: list[Json] = []
                if rv_text in ("", "0"):
                    initial = [
                        copy.deepcopy(o)
                        for (res, ns, _), o in sorted(store.objects.items())
                        if res == route.resource
                        and (route.namespace is None or ns == route.namespace)
                        and matches(o)
                    ]
                    start = store.rv
                else:
                    start = int(rv_text)
                    if start < store.compacted_rv:
                        gone = status_object(
                            410,
                            "Expired",
                            f"too old resource version: {start} ({store.compacted_rv})",
                        )
                        self._chunk({"type": "ERROR", "object": gone})
                        self._end_chunks()
                        return
            for obj in initial:
                self._chunk({"type": "ADDED", "object": obj})
            deadline = api.clock() + timeout
            position = start
            while True:
                with store.cond:
                    pending = [e for e in store.history if e.rv > position and in_scope(e)]
                    quiet = not pending and not api.stopping
                    if quiet and api.drop_generation == generation:
                        remaining = deadline - api.clock()
                        if remaining > 0:
                            store.cond.wait(min(remaining, 0.05))
                            continue
                if api.drop_generation != generation:
                    self._abort()
                    return
                if api.stopping or not pending:
                    break
                for ev in pending:
                    position = ev.rv
                    kind = _filtered_type(ev, matches)
                    if kind is not None:
                        self._chunk({"type": kind, "object": ev.new})
            self._end_chunks()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            api.active_watches -= 1

    def _chunk(self, event: Json) -> None:
        data = (json.dumps(event) + "\n").encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _abort(self) -> None:
        """Drop the connection mid-stream, as a crashing API server or LB would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _go_bool(value: str | None) -> bool:
    """Query booleans as the API server parses them (Go's strconv.ParseBool)."""
    return value in ("1", "t", "T", "true", "TRUE", "True")


def _filtered_type(ev: StoredEvent, matches: Callable[[Json | None], bool]) -> str | None:
    """The event a label/field-filtered watch sees (the API server's cacher semantics)."""
    was, now = matches(ev.old), matches(ev.new)
    if ev.type == "ADDED":
        return "ADDED" if now else None
    if ev.type == "DELETED":
        return "DELETED" if was else None
    if was and now:
        return "MODIFIED"
    if now:
        return "ADDED"
    if was:
        return "DELETED"
    return None


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    api: FakeApiServer


class FakeApiServer:
    """The fake API server. Use as a context manager; ``url`` is its base address."""

    def __init__(self, default_watch_timeout_s: float = 30.0) -> None:
        self.store = Store()
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.default_watch_timeout_s = default_watch_timeout_s
        self.stopping = False
        self.drop_generation = 0
        self.active_watches = 0
        self.clock: Callable[[], float] = time.monotonic
        self._http = _HttpServer(("127.0.0.1", 0), _Handler)
        self._http.api = self
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.store.cond:
            self.stopping = True
            self.store.cond.notify_all()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        with self.store.cond:
            self.faults.append(fault)
        return fault

    def raise_fault(self, method: str, route: Route, watching: bool) -> None:
        with self.store.cond:
            for fault in self.faults:
                if fault.matches(method, route.resource, route.subresource, watching):
                    fault.times -= 1
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    reason = fault.reason or HTTPStatus(fault.status).phrase.replace(" ", "")
                    raise ApiError(fault.status, reason, fault.message, headers)

    def compact(self) -> None:
        """Forget history up to now: resuming a watch from an older version gets 410."""
        with self.store.cond:
            self.store.compacted_rv = self.store.rv
            self.store.history = [e for e in self.store.history if e.rv > self.store.rv]

    def drop_watches(self) -> None:
        """Cut every open watch connection without a clean end of stream."""
        with self.store.cond:
            self.drop_generation += 1
            self.store.cond.notify_all()

    def count(self, method: str, path_suffix: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.path.endswith(path_suffix))

    def watch_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if _go_bool(r.query.get("watch"))]

    def objects(self, resource: str, namespace: str | None = None) -> list[Json]:
        with self.store.cond:
            return [
                copy.deepcopy(o)
                for (res, ns, _), o in sorted(self.store.objects.items())
                if res == resource and (namespace is None or ns == namespace)
            ]

    def get(self, resource: str, namespace: str | None, name: str) -> Json | None:
        with self.store.cond:
            obj = self.store.objects.get((resource, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def create(self, resource: str, obj: Json) -> Json:
        with self.store.cond:
            namespaced = RESOURCES[resource].namespaced
            ns = obj.get("metadata", {}).get("namespace") if namespaced else None
            return self.store.create(resource, ns, copy.deepcopy(obj))

    def mutate(
        self, resource: str, namespace: str | None, name: str, fn: Callable[[Json], None]
    ) -> Json:
        """Change an object in place (as a controller would) and emit MODIFIED."""
        with self.store.cond:
            obj = copy.deepcopy(self.store.get(resource, namespace, name))
            fn(obj)
            return self.store.update(resource, namespace, name, obj)

    def delete(
        self, resource: str, namespace: str | None, name: str, grace: int | None = None
    ) -> Json:
        with self.store.cond:
            return self.store.delete(resource, namespace, name, grace)

    # -- serving ---------------------------------------------------------------------

    def serve(
        self,
        method: str,
        route: Route,
        query: dict[str, str],
        body: Any,
        content_type: str | None,
    ) -> tuple[int, Json] | str:
        store = self.store
        with store.cond:
            res, ns, name, sub = route.resource, route.namespace, route.name, route.subresource
            if name is None:
                if method == "GET":
                    return 200, self._list(route, query)
                if method == "POST":
                    if not isinstance(body, dict):
                        raise ApiError(400, "BadRequest", "request body must be an object")
                    return 201, store.create(res, ns, body)
                raise ApiError(405, "MethodNotAllowed", f"{method} on a collection")
            if sub == "log":
                return self._log(route, query)
            if sub not in (None, "status"):
                raise ApiError(404, "NotFound", f"unknown subresource {sub}")
            if method == "GET":
                return 200, copy.deepcopy(store.get(res, ns, name))
            if method == "DELETE":
                grace = query.get("gracePeriodSeconds")
                if isinstance(body, dict) and body.get("gracePeriodSeconds") is not None:
                    grace = body["gracePeriodSeconds"]
                return 200, store.delete(res, ns, name, None if grace is None else int(grace))
            current = store.get(res, ns, name)
            if method == "PUT":
                if not isinstance(body, dict):
                    raise ApiError(400, "BadRequest", "request body must be an object")
                sent_rv = (body.get("metadata") or {}).get("resourceVersion")
                if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                    raise ApiError(
                        409,
                        "Conflict",
                        f'Operation cannot be fulfilled on {res} "{name}": the object has '
                        "been modified; please apply your changes to the latest version",
                    )
                keep = _only_status if sub == "status" else _keep_status
                new = keep(current, body)
                return 200, store.update(res, ns, name, new)
            if method == "PATCH":
                patched = _apply_patch(current, body, content_type)
                new = (
                    _only_status(current, patched)
                    if sub == "status"
                    else _keep_status(current, patched)
                )
                return 200, store.update(res, ns, name, new)
            raise ApiError(405, "MethodNotAllowed", method)

    def _list(self, route: Route, query: dict[str, str]) -> Json:
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"))
        rtype = RESOURCES[route.resource]
        items = [
            copy.deepcopy(o)
            for (res, ns, _), o in sorted(self.store.objects.items())
            if res == route.resource
            and (route.namespace is None or ns == route.namespace)
            and labels(o["metadata"].get("labels") or {})
            and fields(o)
        ]
        return {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": items,
        }

    def _log(self, route: Route, query: dict[str, str]) -> str:
        if route.resource != "pods" or route.name is None or route.namespace is None:
            raise ApiError(404, "NotFound", "logs exist for pods only")
        pod = self.store.get("pods", route.namespace, route.name)
        container = query.get("container") or "base"
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        if container not in names:
            raise ApiError(
                400,
                "BadRequest",
                f"container {container} is not valid for pod {route.name}",
            )
        if (pod.get("status") or {}).get("phase") in (None, "Pending"):
            raise ApiError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{route.name}" is waiting to start: '
                "ContainerCreating",
            )
        text = self.store.logs.get((route.namespace, route.name), "")
        limit = query.get("limitBytes")
        if limit:
            text = text.encode()[: int(limit)].decode("utf-8", "ignore")
        return text


def _apply_patch(current: Json, body: Any, content_type: str | None) -> Json:
    kind = (content_type or "").split(";")[0].strip()
    if kind == "application/json-patch+json":
        if not isinstance(body, list):
            raise ApiError(
                400,
                "BadRequest",
                "json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp",
            )
        return json_patch(current, body)
    if kind in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
        result = merge_patch(current, body)
        assert isinstance(result, dict)
        return result
    raise ApiError(
        415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {kind}"
    )


def _only_status(current: Json, new: Json) -> Json:
    out = copy.deepcopy(current)
    out["status"] = copy.deepcopy(new.get("status") or {})
    if (new.get("metadata") or {}).get("resourceVersion"):
        out["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"]
    return out


def _keep_status(current: Json, new: Json) -> Json:
    out = copy.deepcopy(new)
    if "status" in current:
        out["status"] = copy.deepcopy(current["status"])
    return out


# -- the kubelet -----------------------------------------------------------------------


@dataclass
class FakeKubelet:
    """Plays the scheduler and kubelet for pods in the fake server.

    Binding honours ``nodeSelector: kubernetes.io/hostname`` (the launcher's pinning).
    Every change goes through the store as a status update, so watches see it.
    """

    api: FakeApiServer
    started: list[str] = field(default_factory=list)

    def _pods(self, namespace: str | None) -> Iterator[Json]:
        yield from self.api.objects("pods", namespace)

    def bind(self, namespace: str, name: str) -> Json:
        def change(pod: Json) -> None:
            node = (pod["spec"].get("nodeSelector") or {}).get("kubernetes.io/hostname")
            pod["spec"]["nodeName"] = node or "node-0"
            pod["status"]["conditions"] = [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}
            ]

        return self.api.mutate("pods", namespace, name, change)

    def run(self, namespace: str, name: str, log: str = "", pod_ip: str = "10.0.0.7") -> Json:
        pod = self.api.get("pods", namespace, name)
        if pod is None:
            raise KeyError(name)
        if not pod["spec"].get("nodeName"):
            self.bind(namespace, name)
        with self.api.store.cond:
            self.api.store.logs[(namespace, name)] = log

        def change(p: Json) -> None:
            status = p["status"]
            status["phase"] = "Running"
            status["startTime"] = now_rfc3339()
            status["podIP"] = pod_ip
            status["containerStatuses"] = [
                {
                    "name": c["name"],
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "image": c.get("image", ""),
                    "imageID": "",
                    "state": {"running": {"startedAt": now_rfc3339()}},
                }
                for c in p["spec"].get("containers") or []
            ]

        self.started.append(name)
        return self.api.mutate("pods", namespace, name, change)

    def append_log(self, namespace: str, name: str, text: str) -> None:
        with self.api.store.cond:
            key = (namespace, name)
            self.api.store.logs[key] = self.api.store.logs.get(key, "") + text

    def _terminate(
        self, namespace: str, name: str, phase: str, code: int, reason: str, message: str = ""
    ) -> Json:
        def change(p: Json) -> None:
            status = p["status"]
            status["phase"] = phase
            if message:
                status["message"] = message
            status["containerStatuses"] = [
                {
                    "name": c["name"],
                    "ready": False,
                    "restartCount": 0,
                    "image": c.get("image", ""),
                    "imageID": "",
                    "state": {
                        "terminated": {
                            "exitCode": code,
                            "reason": reason,
                            "startedAt": now_rfc3339(),
                            "finishedAt": now_rfc3339(),
                        }
                    },
                }
                for c in p["spec"].get("containers") or []
            ]

        return self.api.mutate("pods", namespace, name, change)

    def succeed(self, namespace: str, name: str) -> Json:
        return self._terminate(namespace, name, "Succeeded", 0, "Completed")

    def fail(self, namespace: str, name: str, code: int = 1, reason: str = "Error") -> Json:
        return self._terminate(namespace, name, "Failed", code, reason)

    def evict(self, namespace: str, name: str) -> Json:
        def change(p: Json) -> None:
            p["status"]["phase"] = "Failed"
            p["status"]["reason"] = "Evicted"
            p["status"]["message"] = "The node was low on resource: memory."

        return self.api.mutate("pods", namespace, name, change)

    def image_pull_error(self, namespace: str, name: str) -> Json:
        if not (self.api.get("pods", namespace, name) or {}).get("spec", {}).get("nodeName"):
            self.bind(namespace, name)

        def change(p: Json) -> None:
            p["status"]["containerStatuses"] = [
                {
                    "name": c["name"],
                    "ready": False,
                    "restartCount": 0,
                    "image": c.get("image", ""),
                    "imageID": "",
                    "state": {
                        "waiting": {
                            "reason": "ErrImagePull",
                            "message": f'failed to pull image "{c.get("image")}": not found',
                        }
                    },
                }
                for c in p["spec"].get("containers") or []
            ]

        return self.api.mutate("pods", namespace, name, change)

    def unschedulable(self, namespace: str, name: str, message: str) -> Json:
        def change(p: Json) -> None:
            p["status"]["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": now_rfc3339(),
                }
            ]

        return self.api.mutate("pods", namespace, name, change)

    def finish_deletions(self) -> list[str]:
        """Confirm every graceful deletion (the kubelet stopped the containers)."""
        done = []
        for pod in self._pods(None):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                with self.api.store.cond:
                    self.api.store.remove("pods", meta["namespace"], meta["name"])
                done.append(meta["name"])
        return done
