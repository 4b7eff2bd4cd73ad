"""The turn recorder service: keeps ``turn_records`` up to date with the tracker store.

    python -m app.analytics.recorder [--port 5008] [--interval 1.0]

Every ``interval`` seconds it rebuilds the records of the senders with new tracker events
(:class:`app.analytics.turn_records.TurnRecorder`). HTTP on loopback (OpenAPI at ``/openapi.json``):
``GET /health`` (watermark and last sync), ``POST /sync`` (sync now and answer when done: the bot-level
evaluation calls it after playing its conversations, so it reads records of every turn it sent).
A sync that fails (a store down) is logged and retried at the next interval; the records catch up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from app.analytics.turn_records import TurnRecorder
from app.data.db import tracker_store_url
from app.settings import Settings, get_settings

logger = structlog.get_logger(__name__)


def create_app(recorder: TurnRecorder, interval_s: float | None = 1.0) -> FastAPI:
    """The service around one recorder: a sync loop every ``interval_s`` seconds (None: syncs only on
    ``POST /sync``), ``/health`` and ``/sync``."""
    lock = asyncio.Lock()
    state: dict[str, Any] = {"last_sync": None, "last_error": None, "synced_senders": 0}

    async def sync_now() -> int:
        async with lock:  # one sync at a time: the loop and a caller never rebuild a sender twice at once
            try:
                rebuilt = await asyncio.to_thread(recorder.sync)
            except Exception as exc:  # a store is down: say so, retry next time
                state["last_error"] = f"{type(exc).__name__}: {exc}"[:300]
                logger.error("recorder.sync_failed", error=state["last_error"])
                raise
            state.update(last_sync=time.time(), last_error=None)
            state["synced_senders"] += rebuilt
            if rebuilt:
                logger.info("recorder.synced", senders=rebuilt, watermark=recorder.watermark)
            return rebuilt

    async def loop() -> None:
        while True:
            with contextlib.suppress(Exception):  # logged in sync_now; the loop must survive it
                await sync_now()
            await asyncio.sleep(interval_s or 1.0)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(loop()) if interval_s is not None else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()

    app = FastAPI(title="Switchboard turn recorder", version="1", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """``ok`` with the last tracker event turned into records and when the last sync finished."""
        return {"status": "ok", "watermark": recorder.watermark, **state}

    @app.post("/sync", responses={503: {"description": "a store is unreachable"}})
    async def sync() -> JSONResponse:
        """Rebuild the records of every sender with new events now; answers when done."""
        try:
            rebuilt = await sync_now()
        except Exception:
            return JSONResponse({"error": "sync_failed", "message": state["last_error"]}, status_code=503)
        return JSONResponse({"senders": rebuilt, "watermark": recorder.watermark})

    return app


def recorder_for(settings: Settings) -> TurnRecorder:
    """The recorder over this deployment's tracker store and our stores."""
    return TurnRecorder(tracker_store_url(settings), settings.db_url, default_tenant=settings.tenant)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from app.observability.logging import configure_logging
    from app.offline import apply_offline_env

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app.analytics.recorder", description=__doc__)
    parser.add_argument("--port", type=int, default=settings.recorder_port)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between syncs")
    args = parser.parse_args(argv)
    apply_offline_env()
    configure_logging()
    app = create_app(recorder_for(settings), args.interval)
    uvicorn.run(app, host=settings.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
