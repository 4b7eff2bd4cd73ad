"""Settings of the main environment: the one reader of the environment, the ``.env`` file and params.yaml.

- Fields: environment variables prefixed ``SWITCHBOARD_`` or a ``.env`` file in the working directory (the
  environment wins), then the defaults below (pydantic-settings).
- Variables whose names are data rather than fields (an LLM tier's ``api_key_env``, the flag overrides
  ``SWITCHBOARD_FLAG_<NAME>[__<TENANT>]``, ``MLFLOW_TRACKING_URI``): :meth:`Settings.environ` and
  :meth:`Settings.secret`, the live environment over the same ``.env`` file.
- params.yaml (``params_file``) is parsed once per version of the file (an edited file is read again).
  Modules declare their own section models and ask for them: ``get_settings().section("router",
  RouterConfig)`` is the validated model, cached per version of the file; an invalid section is a
  ``ValueError`` (:class:`ParamsError`) naming it. This module imports none of those models: it stays a leaf
  that anything can import. :func:`read_params` / :func:`read_section` read another params file the same way
  (a pipeline stage reads the one DVC tracks, a CLI its ``--params``).

Not importable from the Rasa environment (pydantic 2): the code Rasa loads reads ``app/channels/settings.py``.
"""

from __future__ import annotations

import copy
import os
from collections import ChainMap
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml
from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.channels.settings import DEFAULT_MAX_MESSAGE_CHARS, DEFAULT_TENANT
from app.channels.turns import channel_headers

ROOT = Path(__file__).resolve().parents[1]

M = TypeVar("M")


class ParamsError(ValueError):
    """A params file that cannot be used (not YAML, not a mapping) or a section that fails validation; the
    message names the file and the section."""


class BaseParams(BaseModel):
    """``base`` in params.yaml: what every pipeline stage shares, and the bot's default tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 42
    tenant: str = Field(
        DEFAULT_TENANT, min_length=1, description="tenant of stores and documents without one"
    )
    mlflow_experiment: str = "switchboard"


class ServeParams(BaseModel):
    """``serve`` in params.yaml: the running bot's tunables. An unknown key is an error (an option nothing
    reads would be a lie): the "I don't know" cut-off travels with the index (``KnowledgeBase.cut_off_for``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    knowledge_top_k: int = Field(3, ge=1, description="excerpts an answer is built from")
    max_message_chars: int = Field(
        DEFAULT_MAX_MESSAGE_CHARS, ge=1, description="longer messages get HTTP 413 (REST channel and gateway)"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    rasa_port: int = 5005
    action_port: int = 5055
    streamlit_port: int = 8501
    lab_port: int = 8888  # JupyterLab (`make lab`, app/lab.py)
    recorder_port: int = 5008  # the turn recorder service (app/analytics/recorder.py)
    crm_port: int = 0  # CRM/notification service (app/integrations/services); 0: a free port chosen at start
    crm_timeout_s: float = 5.0  # per HTTP call from the action server and the UI to the CRM service
    crm_job_delay_s: float = 2.0  # background jobs (refunds) run this long after they are queued
    crm_poll_s: float = 0.5  # how often the service's worker looks for due jobs
    ticket_webhook_url: str = ""  # where ticket status events are posted; default: the service's own receiver

    tenant: str = ""  # default: params.yaml base.tenant (the tenant the pipeline indexes documents under)
    state_dir: Path = ROOT / ".switchboard"  # runtime databases, logs and PID files (git-ignored)
    database_url: str = ""  # our stores (CRM stand-in, tickets, ...); default: SQLite in state_dir
    tracker_store_db: str = ""  # Rasa's SQLite tracker store; default: state_dir/tracker.db
    # Scale-out (app/scaleout.py, docs/scale-out.md): several Rasa replicas need both shared stores.
    rasa_replicas: int = 1  # Rasa servers on rasa_port, then the next free ports
    tracker_store_url: str = ""  # postgresql://user@host:5432/db; empty: SQLite at tracker_db
    lock_store_url: str = ""  # redis://host:6379/1; empty: Rasa's in-memory lock store (one replica only)
    lock_store_key_prefix: str = ""  # alphanumeric; keeps deployments sharing one Redis db apart
    # Rasa's event broker (optional): amqp://user:password@host:5672/vhost. Rasa publishes every event to the queue
    # and the turn recorder consumes it (turn records at once, no polling of the tracker store).
    event_broker_url: str = ""
    event_broker_queue: str = "switchboard_events"
    # Several action-server processes (app/actions/server.py --workers; docs/scale-out.md): what one worker
    # learns about a failing dependency, every worker must know, so both need a shared store (Redis).
    action_workers: int = 1  # Sanic worker processes behind the one action-server port
    breaker_storage_url: str = ""  # redis://host:6379/db: circuit-breaker state shared; empty: per process
    breaker_key_prefix: str = "switchboard:breaker"  # keeps deployments sharing one Redis db apart
    degradation_storage_url: str = ""  # overrides params.yaml router.degradation.storage_url (redis://...)

    # The checkout whose environments and neighbours (.venv-rasa, ../shared, the MLflow store) this process uses:
    # DVC_ROOT, which `dvc repro` sets to the project and a queued `dvc exp run` to the project it was queued in
    # (the experiment itself runs in a temporary copy under .dvc/tmp/exps that has neither), else this checkout.
    project_root: Path = ROOT
    rasa_python: Path = ROOT / ".venv-rasa" / "bin" / "python"  # default: project_root/.venv-rasa/bin/python
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

    # Where the other services reach one (deploy/k8s, README "Deploying on Kubernetes"). On one machine every
    # service is at `host`; on Kubernetes each is behind its own Service name and `host` is only what a process
    # binds to (0.0.0.0). Empty: http://{host}:{the service's port}.
    crm_base_url: str = ""  # e.g. http://switchboard-crm:5010 (action server, chat and agent pages)
    action_base_url: str = ""  # e.g. http://switchboard-actions:5055 (Rasa's action endpoint, gateway health)
    gateway_base_url: str = ""  # e.g. http://switchboard-gateway:5006 (the chat page posts there)

    # --- security (issue 12; docs/gateway.md) -------------------------------------------------------------
    jwt_audience: str = ""  # when set, every token must carry this `aud` (your identity provider's audience)
    jwt_issuer: str = ""  # when set, every token must carry this `iss`
    api_key_secret: SecretStr = SecretStr("")  # keyed hash of stored API keys (>= 32 bytes); empty: keys off
    channel_secret: SecretStr = SecretStr("")  # shared secret the gateway sends Rasa's REST channel

    @property
    def channel_headers(self) -> dict[str, str]:
        """Headers for talking to Rasa's REST channel directly: the channel secret when one is set."""
        return channel_headers(self.channel_secret.get_secret_value())

    # --- end security --------------------------------------------------------------------------------------

    # --- channels (issue 14; app/channels, README "Channels") ------------------------------------------------
    # Credentials come from the environment (or .env) only; a channel without them is off. Which workspace,
    # Microsoft tenant or phone number belongs to which tenant is in params.yaml `channels`.
    public_url: str = ""  # the public HTTPS base URL vendors call (the gateway behind TLS); Twilio signs it
    slack_bot_token: SecretStr = SecretStr("")  # xoxb-...: posts replies (chat.postMessage)
    slack_signing_secret: SecretStr = SecretStr("")  # verifies X-Slack-Signature
    slack_api_url: str = ""  # empty: https://slack.com/api/ (tests: a local stand-in)
    teams_app_id: str = ""  # the Azure bot's Microsoft App ID (the tokens' audience)
    teams_app_password: SecretStr = SecretStr("")  # its client secret (replies' access tokens)
    teams_openid_url: str = ""  # empty: Bot Framework's OpenID configuration (signing keys)
    teams_jwks_url: str = ""  # empty: the key set the OpenID configuration names
    teams_token_url: str = ""  # empty: login.microsoftonline.com/botframework.com (multi-tenant bots)
    twilio_account_sid: str = ""  # AC...: SMS and voice
    twilio_auth_token: SecretStr = SecretStr("")  # verifies X-Twilio-Signature, sends SMS replies
    twilio_api_url: str = ""  # empty: https://api.twilio.com (tests: a local stand-in)
    voice_transfer_number: str = ""  # E.164: calls go here when the caller asks for a person
    # --- end channels ----------------------------------------------------------------------------------------

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

    # Read by app/cache and nlu/datasets.py through the settings, so a .env file reaches them too.
    cache_backend: str = ""  # sql | redis: overrides params.yaml cache.backend (app/cache)
    cache_redis_url: str = ""  # overrides params.yaml cache.redis_url
    # the public NLU benchmarks (nlu/datasets.py), read in place; default: project_root/../shared/datasets
    datasets: Path = ROOT.parent / "shared" / "datasets"

    _dotenv_files: tuple[Path, ...] = PrivateAttr(default=())

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        env_file = values["_env_file"] if "_env_file" in values else self.model_config.get("env_file")
        files = (
            [] if env_file is None else [env_file] if isinstance(env_file, str | os.PathLike) else env_file
        )
        self._dotenv_files = tuple(Path(f).resolve() for f in files)

    @model_validator(mode="after")
    def _paths_from_project_root(self) -> Settings:
        """``project_root`` from DVC_ROOT when not set (``SWITCHBOARD_PROJECT_ROOT``), and the paths that hang off it
        from there unless set themselves: a queued experiment's temporary copy finds the project's environments."""
        if "project_root" not in self.model_fields_set and os.environ.get("DVC_ROOT"):
            self.project_root = Path(os.environ["DVC_ROOT"]).resolve()
        if "rasa_python" not in self.model_fields_set:
            self.rasa_python = self.project_root / ".venv-rasa" / "bin" / "python"
        if "datasets" not in self.model_fields_set:
            self.datasets = self.project_root.parent / "shared" / "datasets"
        return self

    @model_validator(mode="after")
    def _tenant_from_params(self) -> Settings:
        """No SWITCHBOARD_TENANT: the tenant of params.yaml ``base`` (one setting for pipeline and bot). A params
        file that cannot be read leaves the default here; reading its sections reports the problem."""
        if not self.tenant:
            try:
                self.tenant = self.base().tenant
            except (OSError, ValueError):
                self.tenant = DEFAULT_TENANT
        return self

    @property
    def rasa_url(self) -> str:
        return f"http://{self.host}:{self.rasa_port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.rasa_url}/webhooks/rest/webhook"

    @property
    def gateway_url(self) -> str:
        return self.gateway_base_url.rstrip("/") or f"http://{self.host}:{self.gateway_port}"

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
    def action_server_url(self) -> str:
        """The action server's base URL (``/webhook``, ``/health``, ``/metrics`` below it)."""
        return self.action_base_url.rstrip("/") or f"http://{self.host}:{self.action_port}"

    @property
    def action_url(self) -> str:
        return f"{self.action_server_url}/webhook"

    @property
    def streamlit_url(self) -> str:
        return f"http://{self.host}:{self.streamlit_port}"

    @property
    def crm_url(self) -> str:
        return self.crm_base_url.rstrip("/") or f"http://{self.host}:{self.crm_port}"

    @property
    def ticket_webhook(self) -> str:
        return self.ticket_webhook_url or f"{self.crm_url}/webhooks/tickets"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'switchboard.db'}"

    @property
    def tracker_db(self) -> str:
        return self.tracker_store_db or str(self.state_dir / "tracker.db")

    def environ(self) -> Mapping[str, str]:
        """The process environment over the ``.env`` file, read-only and live (a variable set later is seen):
        for variables whose names are data, not fields (flag overrides, ``api_key_env``)."""
        dotenv = [_dotenv(*_version(f)) for f in reversed(self._dotenv_files) if f.is_file()]
        return MappingProxyType(ChainMap(os.environ, *dotenv))  # the last .env file wins, as for the fields

    def secret(self, name: str) -> str:
        """The value of the variable ``name`` (environment, then ``.env``); empty when unset. For credentials
        whose variable a config file names (``tiers.endpoints.<n>.api_key_env``): never in params.yaml."""
        return self.environ().get(name, "") if name else ""

    def params(self) -> dict[str, Any]:
        """All of params.yaml (a copy)."""
        return read_params(self.params_file)

    def params_section(self, name: str) -> dict[str, Any]:
        """One section of params.yaml as a mapping (a copy; empty when absent); ``a.b`` for a nested one."""
        return read_params(self.params_file, name)

    def section(self, name: str, model: type[M] | Callable[[dict[str, Any]], M]) -> M:
        """One section of params.yaml (``a.b`` for a nested one) validated as ``model``: a pydantic model class,
        or a callable that takes the mapping (e.g. ``Flags.from_params``). Cached per version of the file, so
        callers share the result: do not change it. ``ParamsError`` names an invalid section; ``OSError``
        when the file cannot be read."""
        return read_section(self.params_file, name, model)

    def serve_params(self) -> dict[str, Any]:
        """The ``serve`` section of params.yaml as a mapping (keys without a :class:`ServeParams` field too)."""
        return self.params_section("serve")

    def serve(self) -> ServeParams:
        """The ``serve`` section of params.yaml, typed: the running bot's tunables."""
        return self.section("serve", ServeParams)

    def base(self) -> BaseParams:
        """The ``base`` section of params.yaml, typed (what every stage shares)."""
        return self.section("base", BaseParams)


def read_params(path: Path | str, name: str | None = None) -> dict[str, Any]:
    """A params file (or its section ``name``, ``a.b`` for a nested one; empty when absent) as a mapping, parsed
    once per version of the file and handed out as a copy. ``OSError`` when the file cannot be read,
    ``ParamsError`` when it (or the section) is not a mapping."""
    parsed = _parsed(*_version(path))
    return copy.deepcopy(parsed if name is None else _lookup(parsed, name, str(path)))


def read_section(path: Path | str, name: str, model: type[M] | Callable[[dict[str, Any]], M]) -> M:
    """:meth:`Settings.section` for the params file at ``path``."""
    return _validated(*_version(path), name, model)


def validate_section(
    name: str,
    model: type[M] | Callable[[dict[str, Any]], M],
    data: Mapping[str, Any] | None,
    where: str = "params.yaml",
) -> M:
    """``data`` (the section ``name``) as ``model``: a pydantic model class is validated, a callable is called
    with the mapping. A ``ValidationError`` becomes a ``ParamsError`` naming the section and ``where``; other
    errors of a callable pass unchanged (they name their section themselves). Modules' ``from_params(section)``
    entry points use it too, so a mapping given directly is checked and reported the same way."""
    data = dict(data or {})
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(data)  # type: ignore[return-value]
        return model(data)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ParamsError(f"invalid `{name}` section in {where}: {validation_errors(exc)}") from exc


def validation_errors(exc: ValidationError) -> str:
    """A pydantic ``ValidationError`` on one line: ``where: what`` for each error, for messages people read."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _version(path: Path | str) -> tuple[str, int, int]:
    """The file's identity for the caches: resolved path, mtime and size (an edited file is a new key)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return str(resolved), stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=8)
def _parsed(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """params.yaml parsed (YAML parsing costs ~7 ms; the bot reads sections on every turn)."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, not {type(loaded).__name__}")
    return loaded or {}


def _lookup(params: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value: Any = params
    for depth, key in enumerate(name.split(".")):
        value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return {}
        if not isinstance(value, dict):
            section = ".".join(name.split(".")[: depth + 1])
            raise ParamsError(f"`{section}` in {where} must be a mapping, not {type(value).__name__}")
    return value


@lru_cache(maxsize=64)
def _validated(path: str, mtime_ns: int, size: int, name: str, model: Any) -> Any:
    data = _lookup(_parsed(path, mtime_ns, size), name, path)
    return validate_section(name, model, copy.deepcopy(data), where=path)


@lru_cache(maxsize=4)
def _dotenv(path: str, mtime_ns: int, size: int) -> dict[str, str]:
    """A ``.env`` file's variables (python-dotenv, as pydantic-settings reads it), per version of the file."""
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (environment and ``.env`` read once; params.yaml sections per file version)."""
    return Settings()
