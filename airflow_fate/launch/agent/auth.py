"""Request signatures between the executor and worker-pod agents.

An agent runs whatever command it is handed, so it must only take work from the
scheduler. Both hold one secret (a Kubernetes Secret the executor creates; the agent
reads it from its environment once). Every request carries a timestamp and an
HMAC-SHA256 over method, path, timestamp and body, so:

* the secret never travels (a captured request does not reveal it);
* a request changed in transit, or signed with another key, fails the check;
* a captured request cannot be replayed after ``MAX_SKEW_S``, and within that window a
  replayed submission names a task try the agent already has, which it refuses.

Signatures are compared with `hmac.compare_digest` (constant time). Nothing here logs
or formats the secret; `Secret` hides it from ``repr`` and ``str``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Fate-Signature"
TIMESTAMP_HEADER = "X-Fate-Timestamp"
MAX_SKEW_S = 300.0
"""How far a request's timestamp may be from the agent's clock (seconds)."""
_MIN_SECRET_BYTES = 16


class Secret:
    """The shared secret; its value never appears in ``repr``, ``str`` or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        raw = raw.strip()
        if len(raw) < _MIN_SECRET_BYTES:
            raise ValueError(f"the agent secret must be at least {_MIN_SECRET_BYTES} bytes")
        self._value = raw

    @classmethod
    def generate(cls) -> Secret:
        """A new random secret (256 bits, URL-safe text)."""
        return cls(secrets.token_urlsafe(32))

    def reveal(self) -> bytes:
        """The raw value, for storing it in the Kubernetes Secret (and nowhere else)."""
        return self._value

    def sign(self, method: str, path: str, timestamp: str, body: bytes) -> str:
        """The hex HMAC-SHA256 signature of one request."""
        message = b"\n".join(
            (method.upper().encode(), path.encode("utf-8"), timestamp.encode("ascii"), body)
        )
        return hmac.new(self._value, message, hashlib.sha256).hexdigest()

    def headers(self, method: str, path: str, body: bytes, now: float) -> dict[str, str]:
        """The headers that authenticate a request sent at ``now`` (Unix seconds)."""
        timestamp = f"{now:.3f}"
        return {
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: self.sign(method, path, timestamp, body),
        }

    def refusal(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, now: float
    ) -> str | None:
        """Why a request is refused (in words that reveal nothing), or None if it is
        authentic and fresh."""
        lower = {k.lower(): v for k, v in headers.items()}  # header names ignore case
        timestamp = lower.get(TIMESTAMP_HEADER.lower())
        signature = lower.get(SIGNATURE_HEADER.lower())
        if not timestamp or not signature:
            return "missing signature"
        try:
            sent = float(timestamp)
        except ValueError:
            return "malformed timestamp"
        if abs(now - sent) > MAX_SKEW_S:
            return "stale or future timestamp"
        expected = self.sign(method, path, timestamp, body)
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
            return "bad signature"
        return None

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__
