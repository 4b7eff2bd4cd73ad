"""Runtime settings for the main environment (action server, Streamlit, launcher, benchmarks).

Values come from environment variables prefixed ``SWITCHBOARD_`` (or a ``.env`` file), then the defaults
below; the bot's tunables (thresholds, top-k) come from the ``serve`` section of ``params.yaml``.
Not importable from the Rasa environment (pydantic 2).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    rasa_port: int = 5005
    action_port: int = 5055
    streamlit_port: int = 8501
    recorder_port: int = 5008  # the turn recorder service (app/analytics/recorder.py)
    crm_port: int = 0  # CRM/notification service (app/integrations/services); 0: a free port chosen at start
    crm_timeout_s: float = 5.0  # per HTTP call from the action server and the UI to the CRM service
    crm_job_delay_s: float = 2.0  # background jobs (refunds) run this long after they are queued
    crm_poll_s: float = 0.5  # how often the service's worker looks for due jobs
    ticket_webhook_url: str = ""  # where ticket status events are posted; default: the service's own receiver

    tenant: str = "acme"
    state_dir: Path = ROOT / ".switchboard"  # runtime databases, logs and PID files (git-ignored)
    database_url: str = ""  # our stores (CRM stand-in, tickets, ...); default: SQLite in state_dir
    tracker_store_db: str = ""  # Rasa's SQLite tracker store; default: state_dir/tracker.db
    # Scale-out (app/scaleout.py, docs/scale-out.md): several Rasa replicas need both shared stores.
    rasa_replicas: int = 1  # Rasa servers on rasa_port, then the next free ports
    tracker_store_url: str = ""  # postgresql://user@host:5432/db; empty: SQLite at tracker_db
    lock_store_url: str = ""  # redis://host:6379/1; empty: Rasa's in-memory lock store (one replica only)
    lock_store_key_prefix: str = ""  # alphanumeric; keeps deployments sharing one Redis db apart

    rasa_python: Path = ROOT / ".venv-rasa" / "bin" / "python"
    model_path: Path = ROOT / "nlu" / "serving" / "model.tar.gz"  # the registry champion (register_nlu)
    index_dir: Path = ROOT / "knowledge" / "index"
    params_file: Path = ROOT / "params.yaml"

    # The gateway (app/gateway, docs/gateway.md): JWT auth and per-plan rate limits in front of Rasa.
    gateway_port: int = 5006
    gateway_upstreams: str = ""  # comma-separated Rasa base URLs, balanced round-robin; default: rasa_url
    gateway_canary_upstreams: str = (
        ""  # Rasa base URLs serving the challenger model (flag challenger_percent)
    )
    challenger_model_path: Path = ROOT / "nlu" / "serving" / "challenger.tar.gz"  # register_nlu writes it
    canary_port: int = 5007  # the challenger's Rasa server, started when a challenger_percent flag is above 0
    gateway_storage_url: str = ""  # rate-limit counters; default: params.yaml gateway.storage_url
    jwt_secret: SecretStr = SecretStr("")  # HS256 key of end-user tokens (>= 32 bytes); never in a file
    jwt_public_key_file: str = ""  # optional PEM public key: RS256 tokens are accepted too

    # knowledge (knowledge/...): embeddings, vector store, ragas judge; empty means "the default / params"
    embed_backend: str = ""  # torch | onnx | onnx-int8 (knowledge/embeddings.py) if the caller names none
    model_cache: str = ""  # exported ONNX models; empty: ~/.cache/switchboard/models
    vector_store: str = ""  # embedded | pgvector (knowledge/stores.py); empty: params build_index
    pgvector_url: SecretStr = SecretStr("")  # postgresql://user:password@host/db of the pgvector store
    pgvector_table: str = ""  # empty: params build_index.pgvector_table
    judge_base_url: str = ""  # ragas judge (knowledge/ragas_eval.py), OpenAI-compatible; empty: none
    judge_model: str = "default"
    judge_api_key: SecretStr = SecretStr("none")
    judge_timeout_s: float = 10.0

    @property
    def rasa_url(self) -> str:
        return f"http://{self.host}:{self.rasa_port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.rasa_url}/webhooks/rest/webhook"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def upstream_urls(self) -> list[str]:
        """The Rasa servers the gateway forwards to (``gateway_upstreams``, else this stack's Rasa)."""
        urls = [u.strip().rstrip("/") for u in self.gateway_upstreams.split(",") if u.strip()]
        return urls or [self.rasa_url]

    @property
    def canary_upstream_urls(self) -> list[str]:
        """Rasa servers of the challenger model, for the canary share of users (none: no canary)."""
        return [u.strip().rstrip("/") for u in self.gateway_canary_upstreams.split(",") if u.strip()]

    @property
    def chat_webhook_url(self) -> str:
        """Where the chat page posts: the gateway when a JWT secret is configured, else Rasa directly."""
        if self.jwt_secret.get_secret_value():
            return f"{self.gateway_url}/webhooks/rest/webhook"
        return self.webhook_url

    @property
    def action_url(self) -> str:
        return f"http://{self.host}:{self.action_port}/webhook"

    @property
    def streamlit_url(self) -> str:
        return f"http://{self.host}:{self.streamlit_port}"

    @property
    def crm_url(self) -> str:
        return f"http://{self.host}:{self.crm_port}"

    @property
    def ticket_webhook(self) -> str:
        return self.ticket_webhook_url or f"{self.crm_url}/webhooks/tickets"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'switchboard.db'}"

    @property
    def tracker_db(self) -> str:
        return self.tracker_store_db or str(self.state_dir / "tracker.db")

    def serve_params(self) -> dict[str, Any]:
        """The ``serve`` section of params.yaml: the running bot's tunables."""
        return self.params_section("serve")

    def params_section(self, name: str) -> dict[str, Any]:
        """One section of params.yaml (empty when absent); parsed once per version of the file (a copy)."""
        path = Path(self.params_file)
        stat = path.stat()
        return copy.deepcopy(
            _parsed_params(str(path.resolve()), stat.st_mtime_ns, stat.st_size).get(name) or {}
        )


@lru_cache(maxsize=8)
def _parsed_params(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """params.yaml parsed (YAML parsing costs ~7 ms; the bot reads sections on every turn). The key holds
    the file's mtime and size, so an edited file is read again."""
    return yaml.safe_load(Path(path).read_text()) or {}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
