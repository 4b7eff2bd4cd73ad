"""Run the CRM service for real (uvicorn on a free loopback port, in a thread) for unit tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from app.integrations.services.crm_service import create_app
from app.settings import Settings
from tests.conftest import free_port

__all__ = ["free_port", "get", "post", "running_service", "service_settings", "wait_for"]


def service_settings(db_url: str, **overrides: object) -> Settings:
    """Settings of a test service on a free port: jobs due at once, a fast worker."""
    values = {
        "database_url": db_url,
        "crm_port": free_port(),
        "crm_job_delay_s": 0.0,
        "crm_poll_s": 0.05,
        "crm_timeout_s": 3.0,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running_service(settings: Settings, run_worker: bool = True) -> Iterator[Settings]:
    """The service serving ``settings`` until the block ends."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, run_worker=run_worker),
            host="127.0.0.1",
            port=settings.crm_port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the CRM service did not start")
        time.sleep(0.02)
    try:
        yield settings
    finally:
        server.should_exit = True
        thread.join(10)


def wait_for(check: Callable[[], object], timeout: float = 15.0) -> object:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def get(settings: Settings, path: str, **kwargs: object) -> httpx.Response:
    return httpx.get(f"{settings.crm_url}{path}", timeout=5, **kwargs)


def post(settings: Settings, path: str, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{settings.crm_url}{path}", timeout=5, **kwargs)
