"""The turn recorder service: keeps ``turn_records`` up to date with the tracker store.

    python -m app.analytics.recorder [--port 5008] [--interval 1.0]

Every ``interval`` seconds it rebuilds the records of the senders with new tracker events
(:class:`app.analytics.turn_records.TurnRecorder`). With Rasa's event broker configured
(``SWITCHBOARD_EVENT_BROKER_URL``, RabbitMQ) it is also the broker's consumer: every event Rasa publishes names
its sender, whose records are rebuilt at once (the polling stays, every 30 s, as a safety net). HTTP on
loopback (OpenAPI at ``/openapi.json``):
``GET /health`` (watermark and last sync), ``POST /sync`` (sync now and answer when done: the bot-level
evaluation calls it after playing its conversations, so it reads records of every turn it sent).
A sync that fails (a store down) is logged and retried at the next interval; the records catch up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
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


class BrokerConsumer:
    """Consumes Rasa's events from RabbitMQ (a thread with its own pika connection) and collects the senders
    they name; :meth:`take` hands them over. A lost connection is retried every few seconds."""

    def __init__(self, url: str, queue: str) -> None:
        self.url, self.queue = url, queue
        self._senders: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.connected = False
        self.thread = threading.Thread(target=self._run, name="event-broker", daemon=True)

    def start(self) -> BrokerConsumer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def take(self) -> set[str]:
        with self._lock:
            taken, self._senders = self._senders, set()
        return taken

    def _on_message(self, channel: Any, method: Any, _properties: Any, body: bytes) -> None:
        try:
            sender = json.loads(body).get("sender_id")
        except (ValueError, AttributeError):
            sender = None
        if isinstance(sender, str) and sender:
            with self._lock:
                self._senders.add(sender)
        channel.basic_ack(method.delivery_tag)

    def _run(self) -> None:
        import pika

        while not self._stop.is_set():
            try:
                connection = pika.BlockingConnection(pika.URLParameters(self.url))
                channel = connection.channel()
                channel.queue_declare(self.queue, durable=True)
                channel.basic_consume(self.queue, self._on_message)
                self.connected = True
                logger.info("recorder.broker_connected", queue=self.queue)
                while not self._stop.is_set():
                    connection.process_data_events(time_limit=0.5)
                connection.close()
            except Exception as exc:  # the broker went away: the polling keeps the records; try again soon
                self.connected = False
                logger.warning("recorder.broker_unavailable", error=f"{type(exc).__name__}: {exc}"[:200])
                self._stop.wait(3.0)


def create_app(
    recorder: TurnRecorder, interval_s: float | None = 1.0, broker: BrokerConsumer | None = None
) -> FastAPI:
    """The service around one recorder: a sync loop every ``interval_s`` seconds (None: syncs only on
    ``POST /sync``), the senders an event broker names synced as they come, ``/health`` and ``/sync``."""
    lock = asyncio.Lock()
    state: dict[str, Any] = {"last_sync": None, "last_error": None, "synced_senders": 0}

    async def sync_now(senders: set[str] | None = None) -> int:
        async with lock:  # one sync at a time: the loop and a caller never rebuild a sender twice at once
            try:
                rebuilt = await asyncio.to_thread(recorder.sync, senders)
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

    async def consume() -> None:
        assert broker is not None
        while True:
            if senders := broker.take():
                with contextlib.suppress(Exception):
                    await sync_now(senders)
            await asyncio.sleep(0.2)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(loop())] if interval_s is not None else []
        if broker is not None:
            tasks.append(asyncio.create_task(consume()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if broker is not None:
                broker.stop()

    app = FastAPI(title="Switchboard turn recorder", version="1", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """``ok`` with the last tracker event turned into records and when the last sync finished."""
        connected = None if broker is None else broker.connected
        return {"status": "ok", "watermark": recorder.watermark, "event_broker_connected": connected, **state}

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
    parser.add_argument("--interval", type=float, help="seconds between syncs (default 1; 30 with a broker)")
    args = parser.parse_args(argv)
    apply_offline_env()
    configure_logging()
    broker = None
    if settings.event_broker_url:
        broker = BrokerConsumer(settings.event_broker_url, settings.event_broker_queue).start()
    interval = args.interval or (30.0 if broker is not None else 1.0)
    app = create_app(recorder_for(settings), interval, broker)
    uvicorn.run(app, host=settings.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
