"""Scale-out mode without starting Rasa: the generated endpoints file, the refusal rules, replica ports."""

from __future__ import annotations

import socket
import stat
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
import yaml

from app import scaleout
from app.evaluation.run import stack_settings
from app.scaleout import (
    ScaleOutError,
    check_action_workers,
    check_scale_out,
    configured_ports,
    endpoints_config,
    ensure_postgres_database,
    free_ports,
    is_postgres_url,
    lock_store_endpoint,
    replica_ports,
    tracker_store_endpoint,
    write_endpoints,
)
from app.settings import Settings
from app.stack import Stack
from tests.app.data.conftest import POSTGRES_SERVER
from tests.conftest import ROOT, guarded_env

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/switchboard_tracker"
REDIS = "redis://127.0.0.1:6379/1"


def make_settings(tmp_path, **overrides) -> Settings:
    """Settings with every scale-out field explicit, so SWITCHBOARD_* variables of the caller do not leak in."""
    values = {
        "state_dir": tmp_path,
        "tracker_store_db": "",
        "tracker_store_url": "",
        "lock_store_url": "",
        "lock_store_key_prefix": "",
        "rasa_replicas": 1,
        "action_port": 5055,
        "action_workers": 1,
        "breaker_storage_url": "",
        "degradation_storage_url": "",
    }
    return Settings(**{**values, **overrides})


# --- endpoints generation -----------------------------------------------------------------------------------


def test_default_is_the_sqlite_tracker_and_no_lock_store(tmp_path):
    config = endpoints_config(make_settings(tmp_path))
    assert config["action_endpoint"] == {"url": "http://127.0.0.1:5055/webhook"}
    assert config["tracker_store"] == {"type": "SQL", "dialect": "sqlite", "db": str(tmp_path / "tracker.db")}
    assert "lock_store" not in config


def test_postgres_tracker_url_is_split_into_rasa_fields(tmp_path):
    url = "postgresql+psycopg://bot:p%40ss%3Aword@db.internal:6543/tracker?sslmode=require"
    section = tracker_store_endpoint(make_settings(tmp_path, tracker_store_url=url))
    assert section == {
        "type": "SQL",
        "dialect": "postgresql",
        "url": "db.internal",
        "port": 6543,
        "db": "tracker",
        "username": "bot",
        "password": "p@ss:word",
        "query": {"sslmode": "require"},
    }


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
def test_every_postgres_spelling_maps_to_rasas_dialect(tmp_path, scheme):
    section = tracker_store_endpoint(make_settings(tmp_path, tracker_store_url=f"{scheme}://u@h/d"))
    assert (section["dialect"], section["url"], section["port"], section["db"]) == (
        "postgresql",
        "h",
        5432,
        "d",
    )
    assert "password" not in section


def test_sqlite_tracker_url_names_the_file(tmp_path):
    section = tracker_store_endpoint(make_settings(tmp_path, tracker_store_url=f"sqlite:///{tmp_path}/t.db"))
    assert section == {"type": "SQL", "dialect": "sqlite", "db": f"{tmp_path}/t.db"}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u@h/d", "unsupported database 'mysql'"),
        ("postgresql://u@h", "needs a host and a database"),
        ("not a url", "not a database URL"),
        ("sqlite://", "needs a file path"),
    ],
)
def test_bad_tracker_urls_are_refused_in_one_line(tmp_path, url, says):
    with pytest.raises(ScaleOutError, match=says) as raised:
        tracker_store_endpoint(make_settings(tmp_path, tracker_store_url=url))
    assert "\n" not in str(raised.value)


def test_redis_lock_store_url(tmp_path):
    settings = make_settings(
        tmp_path, lock_store_url="rediss://user:s%3Acret@cache:6380/3", lock_store_key_prefix="switchboard1"
    )
    assert lock_store_endpoint(settings) == {
        "type": "app.channels.lock_store.AtomicRedisLockStore",
        "url": "cache",
        "port": 6380,
        "db": 3,
        "username": "user",
        "password": "s:cret",
        "use_ssl": True,
        "key_prefix": "switchboard1",
    }
    assert lock_store_endpoint(make_settings(tmp_path, lock_store_url="redis://127.0.0.1")) == {
        "type": "app.channels.lock_store.AtomicRedisLockStore",
        "url": "127.0.0.1",
        "port": 6379,
        "db": 0,
    }


@pytest.mark.parametrize(
    ("url", "prefix", "says"),
    [
        ("memcached://h:1/0", "", "unsupported scheme 'memcached'"),
        ("redis://h:6379/one", "", "numeric db"),
        ("redis://h:99999/1", "", "invalid port"),
        (REDIS, "switchboard:test", "must be alphanumeric"),
    ],
)
def test_bad_lock_store_settings_are_refused(tmp_path, url, prefix, says):
    with pytest.raises(ScaleOutError, match=says):
        lock_store_endpoint(make_settings(tmp_path, lock_store_url=url, lock_store_key_prefix=prefix))


def test_the_template_keeps_its_other_sections(tmp_path):
    template = tmp_path / "endpoints.yml"
    template.write_text(
        "tracker_store: {type: SQL, dialect: sqlite, db: x}\n"
        "lock_store: {type: redis, url: stale}\n"
        "event_broker:\n  type: pika\n  url: ${BROKER_URL}\n"
    )
    template.write_text(template.read_text() + "models:\n  url: ${MODEL_SERVER}\n")
    config = endpoints_config(make_settings(tmp_path), template)
    assert config["models"] == {"url": "${MODEL_SERVER}"}  # a section the settings know nothing of: kept
    # the settings decide the stores and the event broker (SWITCHBOARD_EVENT_BROKER_URL), not the template
    assert "lock_store" not in config and "event_broker" not in config
    assert config["tracker_store"]["db"] == str(tmp_path / "tracker.db")


def test_the_repository_template_still_works_by_hand():
    """nlu/endpoints.yml stays what `rasa run` by hand needs: SQLite and the action URL from the env."""
    config = yaml.safe_load((ROOT / "nlu" / "endpoints.yml").read_text())
    assert config["tracker_store"]["dialect"] == "sqlite"
    assert config["tracker_store"]["db"] == "${SWITCHBOARD_TRACKER_DB}"
    assert config["action_endpoint"]["url"] == "${SWITCHBOARD_ACTION_URL}"


def test_written_file_is_private_and_complete(tmp_path):
    settings = make_settings(
        tmp_path,
        tracker_store_url="postgresql://bot:secret@h/d",
        lock_store_url=REDIS,
        lock_store_key_prefix="abc123",
    )
    path = write_endpoints(settings)
    assert path == tmp_path / "endpoints.yml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the database password
    written = yaml.safe_load(path.read_text())
    assert written == endpoints_config(settings)
    assert written["tracker_store"]["password"] == "secret"
    assert written["lock_store"]["key_prefix"] == "abc123"


# --- refusal rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tracker", "lock", "says"),
    [
        ("", REDIS, "SWITCHBOARD_TRACKER_STORE_URL"),  # SQLite tracker store
        ("sqlite:////tmp/tracker.db", REDIS, "SWITCHBOARD_TRACKER_STORE_URL"),
        (PG, "", "SWITCHBOARD_LOCK_STORE_URL"),  # in-memory lock store
    ],
)
def test_several_replicas_need_both_shared_stores(tmp_path, tracker, lock, says):
    settings = make_settings(tmp_path, rasa_replicas=2, tracker_store_url=tracker, lock_store_url=lock)
    with pytest.raises(ScaleOutError, match=says):
        check_scale_out(settings)


def test_allowed_combinations(tmp_path):
    check_scale_out(make_settings(tmp_path))  # one replica on SQLite: the default
    check_scale_out(make_settings(tmp_path, tracker_store_url=PG))  # one replica on PostgreSQL
    check_scale_out(make_settings(tmp_path, rasa_replicas=3, tracker_store_url=PG, lock_store_url=REDIS))
    with pytest.raises(ScaleOutError, match="at least 1"):
        check_scale_out(make_settings(tmp_path, rasa_replicas=0))


def test_stack_refuses_before_starting_anything(tmp_path):
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"not used")
    settings = make_settings(tmp_path, rasa_replicas=2, model_path=model, rasa_port=0)
    stack = Stack(settings, services=("crm", "rasa"))
    with pytest.raises(ScaleOutError):
        stack.start(timeout=5)
    assert stack.services == []
    assert not (tmp_path / "endpoints.yml").exists()


def run_launcher(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    extra = {
        "SWITCHBOARD_STATE_DIR": str(tmp_path),
        "SWITCHBOARD_TRACKER_STORE_URL": "",
        "SWITCHBOARD_LOCK_STORE_URL": "",
        "SWITCHBOARD_RASA_REPLICAS": "1",
        "SWITCHBOARD_ACTION_WORKERS": "1",
        "SWITCHBOARD_BREAKER_STORAGE_URL": "",
        "SWITCHBOARD_DEGRADATION_STORAGE_URL": "",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.stack", *args],
        cwd=ROOT,
        env=guarded_env(extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--rasa-replicas", "2"], {}, "need a shared tracker store"),
        (["--rasa-replicas", "2"], {"SWITCHBOARD_TRACKER_STORE_URL": PG}, "need a shared lock store"),
        ([], {"SWITCHBOARD_RASA_REPLICAS": "3"}, "3 Rasa replicas need a shared tracker store"),
        (["--rasa-replicas", "0"], {}, "at least 1"),
        (["--action-workers", "2"], {}, "2 action-server workers need shared circuit breakers"),
        (
            ["--action-workers", "2"],
            {"SWITCHBOARD_BREAKER_STORAGE_URL": REDIS},
            "need shared degradation windows: set SWITCHBOARD_DEGRADATION_STORAGE_URL",
        ),
        ([], {"SWITCHBOARD_ACTION_WORKERS": "0"}, "at least 1"),
        ([], {"SWITCHBOARD_BREAKER_STORAGE_URL": "http://x"}, "SWITCHBOARD_BREAKER_STORAGE_URL must be"),
    ],
)
def test_launcher_exits_2_with_one_line(tmp_path, args, env, says):
    done = run_launcher(tmp_path, *args, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and says in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "starting" not in done.stdout and not (tmp_path / "logs").exists()


def run_scaleout(tmp_path, **env: str) -> subprocess.CompletedProcess:
    """``python -m app.scaleout`` (the Kubernetes init container's command) with scale-out settings ``env``."""
    extra = {
        "SWITCHBOARD_STATE_DIR": str(tmp_path),
        "SWITCHBOARD_TRACKER_STORE_URL": "",
        "SWITCHBOARD_LOCK_STORE_URL": "",
        "SWITCHBOARD_EVENT_BROKER_URL": "",
        "SWITCHBOARD_RASA_REPLICAS": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "app.scaleout"],
        cwd=ROOT,
        env=guarded_env(extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_scaleout_command_writes_both_rasa_files_for_a_cluster(tmp_path):
    done = run_scaleout(
        tmp_path,
        SWITCHBOARD_HOST="0.0.0.0",
        SWITCHBOARD_CHANNEL_SECRET="s" * 24,
        SWITCHBOARD_RASA_REPLICAS="2",
        SWITCHBOARD_TRACKER_STORE_URL=PG,
        SWITCHBOARD_LOCK_STORE_URL=REDIS,
        SWITCHBOARD_ACTION_BASE_URL="http://switchboard-actions:5055",
    )
    assert done.returncode == 0, done.stderr
    endpoints = yaml.safe_load((tmp_path / "endpoints.yml").read_text())
    assert endpoints["action_endpoint"] == {"url": "http://switchboard-actions:5055/webhook"}
    assert endpoints["tracker_store"]["dialect"] == "postgresql"
    assert endpoints["lock_store"]["url"] == "127.0.0.1"
    credentials = yaml.safe_load((tmp_path / "credentials.yml").read_text())
    assert "app.channels.rest.SwitchboardRestInput" in credentials
    assert "channel    rest" in done.stdout


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SWITCHBOARD_RASA_REPLICAS": "2"}, "need a shared tracker store"),
        ({"SWITCHBOARD_HOST": "0.0.0.0", "SWITCHBOARD_CHANNEL_SECRET": ""}, "SWITCHBOARD_CHANNEL_SECRET"),
    ],
)
def test_scaleout_command_refuses_in_one_line_and_writes_nothing(tmp_path, env, says):
    done = run_scaleout(tmp_path, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and says in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "endpoints.yml").exists()


# --- replicas in the Stack ----------------------------------------------------------------------------------


def test_replica_ports_are_consecutive_and_skip_taken_ones():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = replica_ports("127.0.0.1", port - 1, 3)
    assert ports[0] == port - 1
    assert port not in ports and len(set(ports)) == 3
    assert ports[1:] == sorted(ports[1:]) and ports[1] > port
    assert replica_ports("127.0.0.1", 5005, 1) == [5005]
    assert replica_ports("127.0.0.1", 5005, 0) == []


def test_free_port_is_below_the_ephemeral_range_and_bindable(tmp_path, monkeypatch):
    # The OS hands ephemeral ports to outgoing connections: a server that binds seconds after its port was
    # chosen (Rasa) could find it taken by a connection to PostgreSQL, as happened in a CI pipeline run.
    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text("32768\t60999\n")
    monkeypatch.setattr(scaleout, "_EPHEMERAL_FILE", ranges)
    ports = {scaleout.free_port("127.0.0.1") for _ in range(20)}
    assert all(scaleout._PORT_FLOOR <= p < 32768 for p in ports) and len(ports) > 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports.pop()))
    # An ephemeral range starting too low to leave room below it: the OS's own choice.
    ranges.write_text("20500 60999\n")
    assert not scaleout._PORT_FLOOR <= scaleout.free_port("127.0.0.1") < 20500
    ranges.unlink()  # no such file (not Linux): Linux's default start
    assert scaleout._PORT_FLOOR <= scaleout.free_port("127.0.0.1") < 32768


def test_ports_handed_out_together_are_never_the_same(tmp_path, monkeypatch):
    # Each port is free when chosen but bound only when its service starts: picked one by one, two services
    # of one stack could be given the same port (a CI pipeline run: "actions exited with code 1 ... Address
    # already in use"). A random source that repeats itself must not make two services share a port.
    class Repeating:
        def __init__(self):
            self.calls = 0

        def randrange(self, start, stop):
            self.calls += 1
            return 30000 + self.calls // 2  # 30000, 30001, 30001, 30002, 30002, ...

    rng = Repeating()
    monkeypatch.setattr(scaleout.random, "SystemRandom", lambda: rng)
    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text("32768 60999\n")
    monkeypatch.setattr(scaleout, "_EPHEMERAL_FILE", ranges)
    ports = free_ports("127.0.0.1", ["a", "b", "c", "d"])
    assert sorted(ports) == ["a", "b", "c", "d"] and len(set(ports.values())) == 4
    assert scaleout.free_port("127.0.0.1", avoid={30003, 30004, 30005}) not in {30003, 30004, 30005}

    base = make_settings(tmp_path, crm_port=0)
    settings = stack_settings(
        base, tmp_path / "m.tar.gz", tmp_path / "idx", tmp_path / "p.yaml", tmp_path / "s"
    )
    chosen = [v for k, v in settings.model_dump().items() if k.endswith("_port") and k != "lab_port"]
    assert len(chosen) == 7 and len(set(chosen)) == 7
    # The CRM port a stack picks for crm_port 0 is none of the ports its settings already give others.
    taken = base.model_copy(update={"rasa_port": 30010, "action_port": 30011, "gateway_port": 30012})
    rng.calls = 20  # the next picks: 30010, 30011, 30011, 30012, 30012, 30013
    assert Stack(taken, services=("crm",)).settings.crm_port not in {30010, 30011, 30012}


def test_configured_ports_are_every_port_setting_but_the_one_named(tmp_path):
    settings = make_settings(tmp_path, rasa_port=30020, action_port=30021, gateway_port=30022)
    ports = configured_ports(settings)
    assert {30020, 30021, 30022} <= ports and settings.crm_port in ports
    assert 30020 not in configured_ports(settings, but="rasa_port")
    assert {30021, 30022} <= configured_ports(settings, but="rasa_port")


def test_stack_defines_one_rasa_service_per_replica(tmp_path):
    settings = make_settings(
        tmp_path, rasa_replicas=2, tracker_store_url=PG, lock_store_url=REDIS, rasa_port=0, crm_port=0
    )
    stack = Stack(settings, services=("crm", "actions", "rasa"))
    services = stack._define()
    assert [s.name for s in services] == ["crm", "actions", "rasa", "rasa-2"]
    ports = stack.rasa_ports
    assert len(set(ports)) == 2
    assert stack.rasa_urls == [f"http://127.0.0.1:{p}" for p in ports]
    for service, port in zip(services[2:], ports, strict=True):
        argv = service.argv
        assert argv[argv.index("--port") + 1] == str(port)
        assert argv[argv.index("--endpoints") + 1] == str(tmp_path / "endpoints.yml")
        assert service.health_url == f"http://127.0.0.1:{port}/webhooks/rest/"
    assert services[3].log_path.name == "rasa-2.log"
    summary = stack.urls()["rasa"]
    assert all(f"{url}/webhooks/rest/webhook" in summary for url in stack.rasa_urls)


def test_one_replica_keeps_the_single_service_layout(tmp_path):
    stack = Stack(make_settings(tmp_path, rasa_port=5005), services=("rasa",))
    assert [s.name for s in stack._define()] == ["rasa"]
    assert stack.rasa_urls == ["http://127.0.0.1:5005"]
    assert stack.urls()["rasa"] == "http://127.0.0.1:5005/webhooks/rest/webhook (REST channel)"


# --- PostgreSQL database creation ---------------------------------------------------------------------------


def test_is_postgres_url():
    assert is_postgres_url(PG) and is_postgres_url("postgresql://u@h/d") and is_postgres_url("postgres://h/d")
    assert not is_postgres_url("sqlite:///x.db") and not is_postgres_url("") and not is_postgres_url("nope")


def test_missing_postgres_database_is_created_once(postgres_url):  # noqa: ARG001 - skips without PostgreSQL
    admin = sa.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    name = f"switchboard_test_{uuid.uuid4().hex[:10]}"
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        assert ensure_postgres_database(url) is True
        assert ensure_postgres_database(url.replace("postgresql+psycopg", "postgresql")) is False
        with sa.create_engine(url).connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar() == name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_replicas_skip_the_ports_of_the_other_services(tmp_path):
    """Other services (action server, gateway...) are not bound yet when the ports are chosen."""
    first = replica_ports("127.0.0.1", 0, 1)[0]
    settings = make_settings(
        tmp_path,
        rasa_port=first,
        action_port=first + 1,
        streamlit_port=first + 2,
        rasa_replicas=2,
        tracker_store_url=PG,
        lock_store_url=REDIS,
    )
    ports = Stack(settings, services=("actions", "rasa")).rasa_ports
    assert ports[0] == first and ports[1] not in {first + 1, first + 2}


# --- action-server workers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"action_workers": 2}, "SWITCHBOARD_BREAKER_STORAGE_URL"),
        ({"action_workers": 2, "breaker_storage_url": "memory://"}, "SWITCHBOARD_BREAKER_STORAGE_URL"),
        ({"action_workers": 2, "breaker_storage_url": REDIS}, "SWITCHBOARD_DEGRADATION_STORAGE_URL"),
        ({"action_workers": 2, "degradation_storage_url": REDIS}, "SWITCHBOARD_BREAKER_STORAGE_URL"),
        ({"action_workers": 0}, "at least 1"),
        ({"breaker_storage_url": "postgresql://h/d"}, "must be empty, memory:// or redis://"),
    ],
)
def test_several_action_workers_need_shared_breakers_and_windows(tmp_path, overrides, says):
    with pytest.raises(ScaleOutError, match=says):
        check_action_workers(make_settings(tmp_path, **overrides))


def test_action_workers_allowed_combinations(tmp_path):
    check_action_workers(make_settings(tmp_path))  # one worker, per-process state: the default
    check_action_workers(make_settings(tmp_path, breaker_storage_url=REDIS))  # one worker may share too
    shared = {"breaker_storage_url": REDIS, "degradation_storage_url": REDIS}
    check_action_workers(make_settings(tmp_path, action_workers=4, **shared))


def test_stack_starts_the_action_server_with_its_workers_and_shared_state(tmp_path):
    shared = {"breaker_storage_url": REDIS, "degradation_storage_url": "redis://127.0.0.1:6379/2"}
    stack = Stack(make_settings(tmp_path, action_workers=3, **shared), services=("actions",))
    (actions,) = stack._define()
    assert actions.argv[actions.argv.index("--workers") + 1] == "3"
    assert actions.health_url == "http://127.0.0.1:5055/health"
    assert stack.urls()["actions"].endswith("(3 worker processes)")
    env = stack.env()
    assert env["SWITCHBOARD_BREAKER_STORAGE_URL"] == REDIS
    assert env["SWITCHBOARD_DEGRADATION_STORAGE_URL"] == "redis://127.0.0.1:6379/2"
    single = Stack(make_settings(tmp_path), services=("actions",))
    assert single._define()[0].argv[-2:] == ["--workers", "1"]
    assert single.urls()["actions"] == "http://127.0.0.1:5055/health"


def test_stack_refuses_workers_without_shared_state_before_starting_anything(tmp_path):
    stack = Stack(make_settings(tmp_path, action_workers=2, crm_port=0), services=("crm", "actions"))
    with pytest.raises(ScaleOutError, match="SWITCHBOARD_BREAKER_STORAGE_URL"):
        stack.start(timeout=5)
    assert stack.services == []
