"""Classifying Kubernetes API errors and spacing retries.

The rules (the same as Airflow's Kubernetes executor):

* 409 Conflict: the object already exists. For a pod that means this try was already
  launched (names are deterministic); adopt it, never create a second one.
* 429 Too Many Requests and 5xx: the API server is overloaded or restarting; retry with
  exponential backoff, honouring ``Retry-After`` when the server sends it.
* any other 4xx: the request itself is wrong (bad spec, forbidden, quota); retrying will
  not help, so the task fails with the API's own reason.

Pure functions only; the caller decides how to wait (an injectable ``sleep``, or a
deferred retry on the next poll).
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from airflow_fate.launch.kubernetes.settings import RetrySettings


class ErrorClass(StrEnum):
    CONFLICT = "conflict"
    RETRY = "retry"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class ApiFailure:
    """One refused API call, classified.

    Attributes:
        status: HTTP status (0 for a connection that failed before any status).
        error_class: what to do about it.
        reason: the API's ``Status.message`` (or ``reason``), else the HTTP reason.
        retry_after_s: the server's ``Retry-After`` in seconds, if sent.
    """

    status: int
    error_class: ErrorClass
    reason: str
    retry_after_s: float | None = None

    def describe(self) -> str:
        code = f"HTTP {self.status}" if self.status else "connection error"
        return f"{code}: {self.reason}"


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _status_message(body: str | bytes | None) -> str | None:
    if not body:
        return None
    try:
        doc = json.loads(body)
    except (ValueError, TypeError):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return text.strip()[:500] or None
    if isinstance(doc, dict):
        for key in ("message", "reason"):
            if doc.get(key):
                return str(doc[key])
    return None


def classify(
    status: int,
    headers: Mapping[str, str] | None = None,
    body: str | bytes | None = None,
    http_reason: str | None = None,
) -> ApiFailure:
    """Classify an API error response (``status`` 0 = no response: retryable)."""
    reason = _status_message(body) or http_reason or "no reason given"
    header = None
    if headers:
        header = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    retry_after = parse_retry_after(header)
    if status == 409:
        return ApiFailure(status, ErrorClass.CONFLICT, reason, retry_after)
    if status == 0 or status == 429 or status >= 500:
        return ApiFailure(status, ErrorClass.RETRY, reason, retry_after)
    return ApiFailure(status, ErrorClass.FATAL, reason, retry_after)


def backoff_delay(attempt: int, settings: RetrySettings, retry_after_s: float | None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    ``Retry-After`` wins when present (the server knows when it will recover), capped by
    ``max_retry_after_s`` so a bogus header cannot park the scheduler for hours;
    otherwise exponential backoff capped by ``max_delay_s``.
    """
    if retry_after_s is not None:
        return min(retry_after_s, settings.max_retry_after_s)
    return min(settings.max_delay_s, settings.base_delay_s * float(2 ** min(attempt, 30)))
