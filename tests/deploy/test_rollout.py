"""deploy/k8s/rollout.py: the commands it prints, applied to the rendered manifests (no cluster): a switch makes
the live Service select exactly the new slot's pods, a stage changes the image of the slot's Rasa container, a
canary step sets the flag the gateway reads; bad arguments are one line and exit status 2."""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys

import pytest

from app.flags import Flags
from tests.conftest import ROOT
from tests.deploy.conftest import documents

SCRIPT = ROOT / "deploy" / "k8s" / "rollout.py"
spec = importlib.util.spec_from_file_location("rollout", SCRIPT)
rollout = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rollout)


def commands(*args: str) -> list[list[str]]:
    """The kubectl commands the script prints for ``args`` (comments left out), as argv lists."""
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [shlex.split(line) for line in done.stdout.splitlines() if line and not line.startswith("#")]


def apply(docs: list[dict], argv: list[str]) -> None:
    """Apply one printed ``kubectl patch service`` / ``set image`` / ``set env`` to the rendered documents."""
    assert argv[:3] == ["kubectl", "--namespace", "switchboard"]
    verb = argv[3:5]
    if verb == ["patch", "service"]:
        service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == argv[5])
        service["spec"]["selector"].update(json.loads(argv[argv.index("--patch") + 1])["spec"]["selector"])
    elif verb == ["set", "image"]:
        name = argv[5].removeprefix("deployment/")
        container_name, image = argv[6].split("=", 1)
        deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
        (container,) = [
            c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == container_name
        ]
        container["image"] = image
    elif verb == ["set", "env"]:
        name = argv[5].removeprefix("deployment/")
        variable, value = argv[6].split("=", 1)
        deployment = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
        (env,) = [
            e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == variable
        ]
        env["value"] = value
    else:
        assert verb == ["rollout", "status"], argv


def pods_selected(docs: list[dict], service: str) -> set[str]:
    """The Deployments whose pods a Service selects."""
    selector = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == service)["spec"][
        "selector"
    ]
    return {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Deployment"
        and all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())
    }


@pytest.fixture
def docs(rendered: dict[str, str]) -> list[dict]:
    return documents(rendered["production"])


def gateway_flag(docs: list[dict]) -> str:
    gateway = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "switchboard-gateway"
    )
    env = gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    return next(e["value"] for e in env if e["name"] == rollout.CANARY_FLAG)


def test_the_canary_flag_is_the_one_the_gateway_reads():
    flags = Flags.from_params({"defaults": {"challenger_percent": 0}}, env={rollout.CANARY_FLAG: "25"})
    assert flags.percent("challenger_percent", "acme") == 25


def test_blue_green_rollout_and_rollback(docs: list[dict]):
    assert pods_selected(docs, "switchboard-rasa") == {"switchboard-rasa-blue"}
    image = "registry.example.com/switchboard/rasa:0.2.0"
    for argv in commands("stage", "--slot", "green", "--image", image):
        apply(docs, argv)
    green = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "switchboard-rasa-green"
    )
    assert green["spec"]["template"]["spec"]["containers"][0]["image"] == image
    for argv in commands("switch", "--to", "green"):
        apply(docs, argv)
    assert pods_selected(docs, "switchboard-rasa") == {"switchboard-rasa-green"}
    assert pods_selected(docs, "switchboard-rasa-candidate") == {"switchboard-rasa-blue"}
    for argv in commands("switch", "--to", "blue"):  # rollback: the previous model is still running in blue
        apply(docs, argv)
    assert pods_selected(docs, "switchboard-rasa") == {"switchboard-rasa-blue"}


def test_canary_steps_set_the_gateway_flag_and_the_switch_ends_them(docs: list[dict]):
    assert gateway_flag(docs) == "0"
    for percent in ("5", "25", "50"):
        for argv in commands("canary", "--percent", percent):
            apply(docs, argv)
        assert gateway_flag(docs) == percent
    for argv in commands("switch", "--to", "green"):
        apply(docs, argv)
    assert gateway_flag(docs) == "0"
    assert pods_selected(docs, "switchboard-rasa") == {"switchboard-rasa-green"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["stage", "--slot", "green", "--image", "registry.example.com/rasa:latest"], "names no version"),
        (["stage", "--slot", "green", "--image", "registry.example.com/rasa"], "names no version"),
        (["canary", "--percent", "120"], "between 0 and 100"),
        (["switch", "--to", "red"], "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], says: str):
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and says in done.stderr and done.stderr.count("\n") == 1
    assert done.stdout == ""
