"""Schemathesis fuzzes the HTTP API from its own OpenAPI document (in-process ASGI, with
a running worker): no 5xx, and every 4xx carries a JSON ``{"error": "..."}`` body.

The one 5xx Durable Functions defines on purpose is kept: a status or wait request with
``returnInternalServerErrorOnFailure`` for a Failed instance answers 500 with the status.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.e2e.http_support import KEY, MGMT, InProcess, in_process

OURS = (MGMT, "/api/orchestrators/", "/metrics")
EXAMPLES = int(os.environ.get("PERDURE_FUZZ_EXAMPLES", "25"))  # per operation and mode


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    with in_process(tmp_path_factory.mktemp("fuzz")) as s:
        yield s


def _tame(case: Any) -> None:
    """Keep generated waits short: the API honours ``timeout`` (seconds) faithfully."""
    for name in ("timeout", "pollingInterval"):
        value = (case.query or {}).get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0.2:
            case.query[name] = 0.2


def _problem(case: Any, response: Any) -> str | None:
    status = response.status_code
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        body = None
    where = f"{case.method} {case.formatted_path} query={case.query!r} -> {status}"
    if status >= 500:
        if status == 500 and isinstance(body, dict) and body.get("runtimeStatus") == "Failed":
            return None  # DF's deliberate 500 for a Failed instance on request
        return f"server error: {where}: {response.content[:300]!r}"
    if 400 <= status < 500:
        if not (isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]):
            return f"4xx without a JSON error body: {where}: {response.content[:300]!r}"
        content_type = response.headers.get("content-type") or [""]
        if isinstance(content_type, list):
            content_type = content_type[0]
        if "application/json" not in content_type:
            return f"4xx not labelled JSON: {where}"
    return None


@pytest.mark.timeout(600)
def test_fuzzing_the_openapi_document_finds_no_5xx_and_only_json_errors(
    served: InProcess,
) -> None:
    document = served.http.get(f"{MGMT}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    tried: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(OURS):
            continue  # the example app's own @app.route handlers are user code
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def attempt(case: Any) -> None:
                _tame(case)
                response = case.call(app=served.asgi, headers={"x-functions-key": KEY})
                tried[case.operation.label] += 1
                statuses[response.status_code] += 1
                problem = _problem(case, response)
                if problem and len(problems) < 50:
                    problems.append(problem)

            attempt()
    total = sum(tried.values())
    print(f"\nschemathesis: {total} cases over {len(tried)} operations; statuses {dict(statuses)}")
    Path(os.environ.get("PERDURE_FUZZ_REPORT", "/dev/null")).write_text(
        json.dumps({"cases": total, "operations": len(tried), "statuses": statuses})
    )
    assert not problems, "\n".join(problems)
    assert len(tried) >= 19 and total >= 19 * EXAMPLES
