"""Run the test LLM server with uvicorn in a background thread on 127.0.0.1.

Typical use in a test::

    with LLMTestServer(ServerConfig(models=["small", "large"])) as llm:
        llm.add_rule(pattern="refund", content="Refunds take 5 days.")
        llm.set_faults(model="large", fail_next=1, error_status=503)
        client = openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0)
        ...
        assert llm.request_counts == {"large": 1}
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from .app import ConfigUpdate, FaultConfig, ScriptRule, ServerConfig, ServerState, create_app

HOST = "127.0.0.1"
SHUTDOWN_GRACE_S = 5.0
"""How long :meth:`LLMTestServer.stop` lets requests finish before uvicorn drops them."""


class LLMTestServer:
    """The test LLM server running in a daemon thread; a context manager (``start()`` / ``stop()`` also work).

    ``port=0`` lets the OS pick a free port; :attr:`base_url` tells where the server is once started. The
    controls below change the running server at once; ``POST /admin/config`` on :attr:`url` does the same from
    another process.
    """

    def __init__(self, config: ServerConfig | None = None, *, port: int = 0, startup_timeout_s: float = 10.0):
        self.app = create_app(config)
        self.state: ServerState = self.app.state.llm
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> LLMTestServer:
        """Start serving; return once the socket accepts connections. Raises RuntimeError if it cannot."""
        if self._thread is not None:
            raise RuntimeError("the test LLM server is already running")
        try:
            sock = socket.create_server((HOST, self._requested_port))
        except OSError as exc:
            raise RuntimeError(
                f"the test LLM server could not listen on {HOST}:{self._requested_port}"
            ) from exc
        # The socket is bound here, so a busy port fails in the caller's thread and port 0 is known at once.
        server = uvicorn.Server(
            uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="llm-test-server", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join()
                sock.close()
                timeout = self._startup_timeout_s
                raise RuntimeError(
                    f"the test LLM server did not start (it stopped, or took over {timeout} s)"
                )
            time.sleep(0.01)
        self._server, self._thread = server, thread
        self._port = sock.getsockname()[1]
        return self

    def stop(self) -> None:
        """Stop serving. Requests still waiting out a latency or hang fault answer 503 at once."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        # Interrupt repeatedly: a request accepted just before the listener closed may start waiting later.
        while self._thread.is_alive() and time.monotonic() < deadline:
            self.state.interrupt_pauses()
            self._thread.join(timeout=0.05)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join()
        self._server = self._thread = None
        self._port = None

    def __enter__(self) -> LLMTestServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------- addresses

    @property
    def port(self) -> int:
        """The port the server listens on (only while running)."""
        if self._port is None:
            raise RuntimeError("the test LLM server is not running")
        return self._port

    @property
    def url(self) -> str:
        """Root URL, for ``/health`` and ``/admin/...``: ``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL to give a client: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    # ---------------------------------------------------------------------------------- what was received

    @property
    def requests(self) -> list[Any]:
        """JSON bodies of the chat-completion requests received so far, oldest first."""
        return self.state.requests

    @property
    def request_counts(self) -> dict[str, int]:
        """Number of valid chat-completion requests per model (those answered by a fault included)."""
        return self.state.request_counts

    @property
    def config(self) -> ServerConfig:
        """A copy of the current configuration."""
        return self.state.config

    # ------------------------------------------------------------------------------------------- controls

    def update(self, **fields: Any) -> ServerConfig:
        """Apply a partial update, as ``POST /admin/config`` does (fields of :class:`ConfigUpdate`)."""
        return self.state.update(ConfigUpdate(**fields))

    def set_faults(self, model: str | None = None, **fields: Any) -> ServerConfig:
        """Merge :class:`FaultConfig` fields into the global faults, or into ``model``'s override.

        Example: ``set_faults(fail_next=2, error_status=429, retry_after_s=0.1)`` or
        ``set_faults(model="large", error_rate=1.0)``.
        """
        faults = FaultConfig(**fields)
        if model is None:
            return self.state.update(ConfigUpdate(faults=faults))
        return self.state.update(ConfigUpdate(model_faults={model: faults}))

    def clear_model_faults(self, model: str) -> ServerConfig:
        """Remove ``model``'s fault override, so the global faults apply to it again."""
        return self.state.update(ConfigUpdate(model_faults={model: None}))

    def add_rule(self, **fields: Any) -> ScriptRule:
        """Append a script rule built from :class:`ScriptRule` fields and return it.

        Example: ``add_rule(model="small", pattern=r"(?i)refund", json_object={"intent": "refund"})``.
        """
        rule = ScriptRule(**fields)
        self.state.add_rule(rule)
        return rule

    def reset(self) -> None:
        """Back to the construction configuration; clears the request log, counters and fault progress."""
        self.state.reset()
