"""Kubernetes API calls with error classification and capped, ``Retry-After``-aware retries.

Every call the launcher makes goes through `ApiCaller.call`, so the error rules of
`airflow_fate.launch.kubernetes.retry` hold everywhere. Sleeping is injected: production
passes ``time.sleep`` (or an interruptible wait), tests pass a recorder and never sleep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped,import-not-found,unused-ignore]

from airflow_fate.launch.kubernetes.retry import ApiFailure, ErrorClass, backoff_delay, classify
from airflow_fate.launch.kubernetes.settings import RetrySettings

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class KubernetesApiError(Exception):
    """An API call failed for good (fatal, conflict, or retries exhausted)."""

    def __init__(self, action: str, failure: ApiFailure, attempts: int = 1) -> None:
        self.action = action
        self.failure = failure
        self.attempts = attempts
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{action} failed{tries}: {failure.describe()}")

    @property
    def status(self) -> int:
        return self.failure.status


def failure_of(exc: BaseException) -> ApiFailure | None:
    """Classify an exception raised by the client; ``None`` if it is not an API failure."""
    if isinstance(exc, ApiException):
        headers = dict(exc.headers) if exc.headers else None
        return classify(int(exc.status or 0), headers, exc.body, exc.reason)
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return ApiFailure(0, ErrorClass.RETRY, f"{type(exc).__name__}: {exc}")
    return None


class ApiCaller:
    """Runs API calls, retrying 429/5xx/connection errors with capped backoff."""

    def __init__(self, retry: RetrySettings, sleep: Callable[[float], None]) -> None:
        self._retry = retry
        self._sleep = sleep

    def call(self, action: str, fn: Callable[[], _T], *, max_attempts: int | None = None) -> _T:
        """Return ``fn()``, retrying retryable failures.

        Args:
            action: what the call does, for errors and logs ("create pod x").
            fn: the API call.
            max_attempts: overrides ``RetrySettings.max_attempts``.

        Raises:
            KubernetesApiError: on 409, on other 4xx, or when retries run out.
        """
        limit = max_attempts or self._retry.max_attempts
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:
                failure = failure_of(exc)
                if failure is None:
                    raise
                attempt += 1
                if failure.error_class is not ErrorClass.RETRY:
                    raise KubernetesApiError(action, failure, attempt) from exc
                if attempt >= limit:
                    raise KubernetesApiError(action, failure, attempt) from exc
                delay = backoff_delay(attempt - 1, self._retry, failure.retry_after_s)
                log.warning(
                    "%s: %s; retry %d/%d in %.2fs",
                    action,
                    failure.describe(),
                    attempt,
                    limit - 1,
                    delay,
                )
                self._sleep(delay)
