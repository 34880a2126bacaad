"""API error classes and backoff."""

from __future__ import annotations

import json

import pytest

from airflow_fate.launch.kubernetes.retry import (
    ErrorClass,
    backoff_delay,
    classify,
    parse_retry_after,
)
from airflow_fate.launch.kubernetes.settings import RetrySettings


def _status(message: str, reason: str = "Invalid") -> str:
    return json.dumps({"kind": "Status", "message": message, "reason": reason})


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        pytest.param(409, ErrorClass.CONFLICT, id="409-exists"),
        pytest.param(429, ErrorClass.RETRY, id="429"),
        pytest.param(500, ErrorClass.RETRY, id="500"),
        pytest.param(503, ErrorClass.RETRY, id="503"),
        pytest.param(504, ErrorClass.RETRY, id="504"),
        pytest.param(0, ErrorClass.RETRY, id="no-response"),
        pytest.param(400, ErrorClass.FATAL, id="400"),
        pytest.param(403, ErrorClass.FATAL, id="403-rbac"),
        pytest.param(404, ErrorClass.FATAL, id="404"),
        pytest.param(422, ErrorClass.FATAL, id="422-invalid"),
    ],
)
def test_error_classes(code: int, error_class: ErrorClass) -> None:
    assert classify(code).error_class is error_class


def test_reason_comes_from_the_status_message() -> None:
    failure = classify(422, body=_status('Pod "x" is invalid: spec.containers: Required value'))
    assert failure.reason == 'Pod "x" is invalid: spec.containers: Required value'
    assert failure.describe() == f"HTTP 422: {failure.reason}"


def test_reason_falls_back_to_text_body_then_http_reason() -> None:
    assert classify(502, body=b"bad gateway from proxy").reason == "bad gateway from proxy"
    assert classify(403, http_reason="Forbidden").reason == "Forbidden"
    assert classify(403).reason == "no reason given"


def test_retry_after_header_is_read_case_insensitively() -> None:
    assert classify(429, headers={"retry-after": "7"}).retry_after_s == 7.0
    assert classify(503, headers={"Retry-After": "2"}).retry_after_s == 2.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("3", 3.0, id="seconds"),
        pytest.param(" 1.5 ", 1.5, id="fraction"),
        pytest.param("-4", 0.0, id="negative-clamped"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("nan", None, id="nan"),
        pytest.param("Wed, 21 Oct 2015 07:28:10 GMT", 10.0, id="http-date"),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    # 2015-10-21T07:28:00Z as "now": the HTTP date is 10 s later.
    assert parse_retry_after(value, now=lambda: 1445412480.0) == expected


def test_backoff_grows_exponentially_and_is_capped() -> None:
    settings = RetrySettings(base_delay_s=0.5, max_delay_s=4.0)
    delays = [backoff_delay(n, settings, None) for n in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff_delay(10_000, settings, None) == 4.0


def test_retry_after_wins_but_is_capped() -> None:
    settings = RetrySettings(base_delay_s=0.5, max_delay_s=4.0, max_retry_after_s=60)
    assert backoff_delay(0, settings, 9.0) == 9.0
    assert backoff_delay(0, settings, 3600.0) == 60.0
