"""The fuzz harness (tests/schema_fuzz.py) finds what it is meant to find: a tiny FastAPI app with a 500 on
ids beyond 64 bits (the CRM service's old bug), a hang and an undeclared status is reported as such, and the
same app fixed is clean."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI, HTTPException, Path

from tests.schema_fuzz import fuzz, serving

INT64_MAX = 2**63 - 1


def tiny_app(*, broken: bool) -> FastAPI:
    app = FastAPI(title="tiny", version="1")
    items = {1: "one", 2: "two"}

    @app.get("/items/{item_id}", responses={404: {"description": "no such item"}})
    def item(item_id: int) -> dict[str, str]:
        if item_id > INT64_MAX or item_id < -INT64_MAX - 1:
            if broken:  # what a 64-bit store column does with it
                raise OverflowError("Python int too large to convert to SQLite INTEGER")
            raise HTTPException(404, "no such item")
        if item_id not in items:
            raise HTTPException(404, "no such item")
        return {"name": items[item_id]}

    @app.get("/bounded/{item_id}")
    def bounded(item_id: int = Path(ge=1, le=2**31 - 1)) -> dict[str, int]:  # the fix: checked at the edge
        return {"id": item_id}

    if broken:

        @app.get("/slow")
        def slow() -> dict[str, str]:
            time.sleep(1.5)
            return {"status": "late"}

        @app.get("/teapot", responses={200: {"description": "fine"}})
        def teapot() -> dict[str, str]:
            raise HTTPException(418, "a status the description does not declare")

    return app


@pytest.mark.slow
def test_the_harness_reports_a_500_a_hang_and_an_undeclared_status():
    app = tiny_app(broken=True)
    with serving(app) as url:
        report = fuzz("tiny", app.openapi(), url, max_examples=10, timeout_s=0.5)
    assert report.requests > 20
    assert report.by_operation["server_error", "GET /items/{item_id}"] >= 1, report.summary()
    assert report.by_operation["server_error", "GET /bounded/{item_id}"] == 0, report.summary()
    assert report.by_operation["hang", "GET /slow"] >= 1, report.summary()
    assert (
        report.by_operation["RejectedPositiveData", "GET /teapot"]
        + report.by_operation["UndefinedStatusCode", "GET /teapot"]
        >= 1
    ), report.summary()
    five_hundred = next(f for f in report.findings if f.kind == "server_error")
    assert five_hundred.status == 500 and "curl" in five_hundred.detail  # reproducible from the report


@pytest.mark.slow
def test_the_same_app_fixed_is_clean_on_the_same_seed():
    app = tiny_app(broken=False)
    with serving(app) as url:
        report = fuzz("tiny", app.openapi(), url, max_examples=10, timeout_s=2)
    assert report.requests > 10
    assert (report.server_errors, report.hangs, report.other_failures) == (0, 0, 0), report.summary()
