from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from app.cache.cache import CacheSettings
from app.channels.settings import DEFAULT_MAX_MESSAGE_CHARS, DEFAULT_TENANT
from app.data.retention import RetentionPolicy
from app.flags import Flags
from app.gateway.config import GatewayConfig, GatewayParams
from app.llm.config import TiersConfig
from app.offline import OFFLINE_ENV, apply_offline_env
from app.orchestration.router import RouterConfig
from app.reliability.degradation import DegradationSettings
from app.settings import ParamsError, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_loopback_and_sqlite(tmp_path):
    settings = Settings(state_dir=tmp_path)
    assert settings.host == "127.0.0.1"
    assert settings.webhook_url == "http://127.0.0.1:5005/webhooks/rest/webhook"
    assert settings.db_url == f"sqlite:///{tmp_path / 'switchboard.db'}"
    assert settings.tracker_db == str(tmp_path / "tracker.db")


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_RASA_PORT", "6000")
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1/db")
    settings = Settings()
    assert settings.rasa_url == "http://127.0.0.1:6000"
    assert settings.db_url == "postgresql+psycopg://u@127.0.0.1/db"


def test_service_addresses_are_at_host_unless_a_base_url_names_another(tmp_path):
    """One machine: every service at ``host``. Kubernetes: each behind its own Service name, ``host`` only binds."""
    local = Settings(state_dir=tmp_path, host="127.0.0.1", crm_port=5010, action_port=5055, gateway_port=5006)
    assert local.crm_url == "http://127.0.0.1:5010"
    assert local.action_url == "http://127.0.0.1:5055/webhook"
    assert local.chat_webhook_url.startswith("http://127.0.0.1:")
    cluster = local.model_copy(
        update={
            "host": "0.0.0.0",
            "crm_base_url": "http://switchboard-crm:5010/",
            "action_base_url": "http://switchboard-actions:5055",
            "gateway_base_url": "http://switchboard-gateway:5006",
            "jwt_secret": SecretStr("x" * 32),
        }
    )
    assert cluster.crm_url == "http://switchboard-crm:5010"
    assert cluster.ticket_webhook == "http://switchboard-crm:5010/webhooks/tickets"
    assert cluster.action_server_url == "http://switchboard-actions:5055"
    assert cluster.action_url == "http://switchboard-actions:5055/webhook"
    assert cluster.chat_webhook_url == "http://switchboard-gateway:5006/webhooks/rest/webhook"


def test_serve_params_come_from_params_yaml():
    serve = Settings().serve_params()
    assert {"knowledge_top_k", "max_message_chars"} == set(serve)  # the cut-off travels with the index


def test_an_option_nothing_reads_is_refused(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("serve: {knowledge_top_k: 3, knowledge_min_score: 0.3}\n")
    with pytest.raises(ValueError, match="serve"):
        Settings(params_file=params).serve()


def test_offline_env_never_overrides_explicit_values():
    env = apply_offline_env({"HF_HUB_OFFLINE": "0"})
    assert env["HF_HUB_OFFLINE"] == "0"
    assert all(env[k] == v for k, v in OFFLINE_ENV.items() if k != "HF_HUB_OFFLINE")


def test_params_sections_are_parsed_once_per_version_of_the_file_and_handed_out_as_copies(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("serve: {knowledge_top_k: 3}\n")
    settings = Settings(params_file=params)
    first = settings.serve_params()
    first["knowledge_top_k"] = 99  # a caller changing its copy changes nothing for the next one
    assert settings.serve_params() == {"knowledge_top_k": 3}
    params.write_text("serve: {knowledge_top_k: 5}\n")
    os.utime(params, ns=(params.stat().st_atime_ns, params.stat().st_mtime_ns + 1_000_000))
    assert settings.serve_params() == {"knowledge_top_k": 5}  # an edited file is read again
    assert settings.params_section("missing") == {}


# --- the typed accessor: one reader of params.yaml, sections validated by the models of their modules -------


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = Field(3, ge=1)


def bump_mtime(path: Path) -> None:
    """Some file systems keep a coarse mtime: make sure an edit is seen as a new version of the file."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_section_is_validated_once_per_version_of_the_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("limits: {top_k: 5}\nouter: {inner: {top_k: 7}}\n")
    settings = Settings(params_file=params)
    first = settings.section("limits", Limits)
    assert first == Limits(top_k=5)
    assert settings.section("limits", Limits) is first  # cached: no parse, no validation
    assert Settings(params_file=params).section("limits", Limits) is first  # per file, not per instance
    assert settings.section("outer.inner", Limits).top_k == 7  # nested sections by dotted name
    assert settings.section("missing", Limits) == Limits()  # an absent section: the model's defaults
    params.write_text("limits: {top_k: 9}\n")
    bump_mtime(params)
    assert settings.section("limits", Limits).top_k == 9  # an edited file is read again


def test_section_takes_a_callable_for_models_that_are_not_pydantic(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("flags: {defaults: {new_prompt: true}}\n")
    flags = Settings(params_file=params).section("flags", Flags.from_params)
    assert flags.enabled("new_prompt")


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        (
            "limits: {top_k: 0}\n",
            "limits",
            r"invalid `limits` section in .*params.yaml: top_k: Input should be",
        ),
        ("limits: {top_n: 3}\n", "limits", "invalid `limits` section .*top_n"),
        ("limits: [1, 2]\n", "limits", "`limits` in .*params.yaml must be a mapping"),
        ("outer: {inner: 3}\n", "outer.inner", "`outer.inner` in .* must be a mapping"),
        ("[1, 2]\n", "limits", "must hold a mapping of sections"),
        ("limits: {top_k: [unclosed\n", "limits", "is not valid YAML"),
    ],
)
def test_invalid_sections_are_a_value_error_naming_them(
    tmp_path: Path, text: str, name: str, message: str
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(text)
    with pytest.raises(ParamsError, match=message) as caught:
        Settings(params_file=params).section(name, Limits)
    assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)


def test_the_modules_section_models_validate_the_repository_params() -> None:
    """Every section the bot reads through the accessor is valid as committed (a broken params.yaml fails here,
    not in the first conversation)."""
    settings = Settings(params_file=ROOT / "params.yaml")
    assert settings.section("router", RouterConfig).max_failed_turns >= 1
    assert settings.section("tiers", TiersConfig).available()[0] == 0
    assert settings.section("router.degradation", DegradationSettings.from_params).window_s > 0
    assert settings.section("gateway", GatewayParams).plans
    assert settings.section("retention", RetentionPolicy.from_params) == RetentionPolicy()
    assert settings.section("flags", Flags.from_params).get("degradation_level") in {"auto", "full"}
    assert CacheSettings.from_settings(settings).semantic.threshold > 0
    assert settings.serve().knowledge_top_k >= 1 and settings.base().seed == 42


def test_one_default_per_setting(tmp_path: Path) -> None:
    """With no value in params.yaml the code defaults are the ones of app/channels/settings.py, which the
    Rasa channel uses too, and the router's defaults are the committed params (one value per setting)."""
    empty = tmp_path / "params.yaml"
    empty.write_text("{}\n")
    settings = Settings(params_file=empty)
    assert settings.serve().max_message_chars == DEFAULT_MAX_MESSAGE_CHARS
    assert GatewayConfig.model_fields["max_message_chars"].default == DEFAULT_MAX_MESSAGE_CHARS
    assert settings.tenant == settings.base().tenant == DEFAULT_TENANT
    committed = Settings(params_file=ROOT / "params.yaml").params_section("router")
    defaults = RouterConfig()
    for name in ("nlu_threshold", "unsure_nlu_min_retrieval", "handoff_min_confidence", "max_failed_turns"):
        assert getattr(defaults, name) == committed[name], name


def test_tenant_comes_from_params_base_unless_the_environment_sets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("base: {tenant: globex}\n")
    monkeypatch.delenv("SWITCHBOARD_TENANT", raising=False)
    assert Settings(params_file=params).tenant == "globex"
    assert Settings(params_file=tmp_path / "missing.yaml").tenant == DEFAULT_TENANT
    monkeypatch.setenv("SWITCHBOARD_TENANT", "initech")
    assert Settings(params_file=params).tenant == "initech"


# --- .env: fields and named variables that used to be read from os.environ directly ------------------------

DOTENV = """\
SWITCHBOARD_CACHE_BACKEND=redis
SWITCHBOARD_CACHE_REDIS_URL=redis://127.0.0.1:6379/9
SWITCHBOARD_DATASETS={datasets}
SWITCHBOARD_RASA_PYTHON={python}
SWITCHBOARD_TENANT=globex
SWITCHBOARD_FLAG_NEW_PROMPT=yes
TEST_TIER_KEY=from-dotenv
MLFLOW_TRACKING_URI=sqlite:///from-dotenv.db
"""


def write_dotenv(folder: Path) -> Path:
    dotenv = folder / ".env"
    dotenv.write_text(DOTENV.format(datasets=folder / "datasets", python=folder / "python3.10"))
    return dotenv


@pytest.fixture
def no_switchboard_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_") or name in {"TEST_TIER_KEY", "MLFLOW_TRACKING_URI"}:
            monkeypatch.delenv(name)


def test_dotenv_values_reach_the_fields(tmp_path: Path, no_switchboard_env: None) -> None:
    settings = Settings(_env_file=write_dotenv(tmp_path))
    assert (settings.cache_backend, settings.cache_redis_url) == ("redis", "redis://127.0.0.1:6379/9")
    assert settings.datasets == tmp_path / "datasets"
    assert settings.rasa_python == tmp_path / "python3.10"
    assert settings.tenant == "globex"
    assert Settings(_env_file=None).cache_backend == ""  # no .env: the defaults


def test_dotenv_values_reach_named_variables_and_the_environment_wins(
    tmp_path: Path, no_switchboard_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(_env_file=write_dotenv(tmp_path))
    assert settings.secret("TEST_TIER_KEY") == "from-dotenv"
    assert settings.secret("UNSET_VARIABLE") == "" and settings.secret("") == ""
    assert settings.environ()["SWITCHBOARD_FLAG_NEW_PROMPT"] == "yes"
    monkeypatch.setenv("TEST_TIER_KEY", "from-env")
    assert settings.secret("TEST_TIER_KEY") == "from-env"  # live: a variable set later is seen
    with pytest.raises(TypeError):
        settings.environ()["X"] = "y"  # type: ignore[index]  # read-only: nobody writes os.environ through it


def test_dotenv_reaches_the_modules_that_used_to_read_os_environ(
    tmp_path: Path, no_switchboard_env: None, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    """The process's settings read ./.env: every former reader of os.environ now sees its values."""
    from app.llm.config import TierConfig
    from nlu.datasets import datasets_root
    from nlu.rasa_runner import rasa_env
    from pipelines._common import tracking_uri

    write_dotenv(tmp_path)
    (tmp_path / "python3.10").touch()
    monkeypatch.chdir(tmp_path)
    cache = CacheSettings.from_params({"embedder": "hashing"})
    assert (cache.backend, cache.redis_url) == ("redis", "redis://127.0.0.1:6379/9")
    tier = TierConfig(base_url="http://127.0.0.1:1/v1", model="m", api_key_env="TEST_TIER_KEY")
    assert tier.api_key() == "from-dotenv"
    assert Flags().enabled("new_prompt")
    assert datasets_root() == tmp_path / "datasets"
    assert rasa_env()["SWITCHBOARD_TENANT"] == "globex"  # Rasa subprocesses get the .env values too
    assert tracking_uri() == "sqlite:///from-dotenv.db"


def test_a_queued_experiments_copy_finds_the_projects_environments(
    tmp_path: Path, no_switchboard_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A queued ``dvc exp run`` runs in a temporary copy under .dvc/tmp/exps that has no .venv-rasa and no
    ../shared; DVC_ROOT names the project it was queued in, and the settings' paths hang off that."""
    project = tmp_path / "work" / "switchboard"
    monkeypatch.setenv("DVC_ROOT", str(project))
    settings = Settings(_env_file=None)
    assert settings.project_root == project
    assert settings.rasa_python == project / ".venv-rasa" / "bin" / "python"
    assert settings.datasets == tmp_path / "work" / "shared" / "datasets"
    monkeypatch.setenv("SWITCHBOARD_RASA_PYTHON", str(tmp_path / "python3.10"))  # a path set by hand wins
    assert Settings(_env_file=None).rasa_python == tmp_path / "python3.10"
    monkeypatch.delenv("DVC_ROOT")
    monkeypatch.delenv("SWITCHBOARD_RASA_PYTHON")
    here = Path(__file__).resolve().parents[2]  # outside DVC: this checkout, as before
    assert Settings(_env_file=None).rasa_python == here / ".venv-rasa" / "bin" / "python"
