"""Print the kubectl commands of a model rollout on the manifests of deploy/k8s (README "Deploying on Kubernetes").

The model runs in two slots, ``switchboard-rasa-blue`` and ``switchboard-rasa-green``. The Service
``switchboard-rasa`` (the gateway's upstream) selects the live slot; ``switchboard-rasa-candidate`` (the
gateway's canary upstream) selects the other one. A rollout, one step at a time::

    python deploy/k8s/rollout.py stage --slot green --image registry.example.com/switchboard/rasa:0.2.0
    python deploy/k8s/rollout.py canary --percent 10     # optional: a share of users on the candidate
    python deploy/k8s/rollout.py switch --to green       # blue-green: green is live, canary back to 0
    python deploy/k8s/rollout.py switch --to blue        # rollback: blue still runs the previous model

Each command prints shell commands and changes nothing: read them, then pipe them to ``sh``. The canary share is
the gateway's flag ``challenger_percent`` (``SWITCHBOARD_FLAG_CHALLENGER_PERCENT``, sticky per user); the
gateway answers from the live slot whenever the candidate does not answer. Exit status 2 with one line on bad
arguments.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Sequence
from typing import NoReturn

SLOTS = ("blue", "green")
SLOT_LABEL = "switchboard/slot"
LIVE_SERVICE = "switchboard-rasa"
CANDIDATE_SERVICE = "switchboard-rasa-candidate"
GATEWAY = "switchboard-gateway"
RASA_CONTAINER = "rasa"
CANARY_FLAG = "SWITCHBOARD_FLAG_CHALLENGER_PERCENT"
# a registry path with a tag or a digest: a rollout names the model version it ships, never `latest`
IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(?::(?!latest$)[\w.-]+|@sha256:[0-9a-f]{64})$")


def deployment(slot: str) -> str:
    return f"{LIVE_SERVICE}-{slot}"


def other(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


def kubectl(namespace: str, *args: str) -> str:
    return shlex.join(["kubectl", "--namespace", namespace, *args])


def selector_patch(slot: str) -> str:
    return json.dumps({"spec": {"selector": {SLOT_LABEL: slot}}}, separators=(",", ":"))


def stage(namespace: str, slot: str, image: str) -> list[str]:
    """The new model into ``slot`` (which must not be live), then wait until its pods are ready."""
    return [
        f"# the new model into the {slot} slot (it must be the candidate: check with `status`)",
        kubectl(namespace, "set", "image", f"deployment/{deployment(slot)}", f"{RASA_CONTAINER}={image}"),
        kubectl(namespace, "rollout", "status", f"deployment/{deployment(slot)}", "--timeout=15m"),
        f"# record it: images `switchboard-rasa-{slot}` in your overlay's kustomization.yaml -> {image}",
    ]


def canary(namespace: str, percent: float) -> list[str]:
    """``percent`` of users (sticky per user) to the candidate slot; 0 ends the canary."""
    value = f"{percent:g}"
    return [
        f"# {value} % of users to the candidate slot (X-Model-Variant: challenger in the gateway's replies)",
        kubectl(namespace, "set", "env", f"deployment/{GATEWAY}", f"{CANARY_FLAG}={value}"),
        kubectl(namespace, "rollout", "status", f"deployment/{GATEWAY}", "--timeout=10m"),
    ]


def switch(namespace: str, to: str) -> list[str]:
    """``to`` becomes live, the other slot the candidate (and the rollback target); the canary ends."""
    return [
        f"# {to} is live, {other(to)} keeps the previous model as the candidate (switch back to roll back)",
        kubectl(namespace, "patch", "service", LIVE_SERVICE, "--patch", selector_patch(to)),
        kubectl(namespace, "patch", "service", CANDIDATE_SERVICE, "--patch", selector_patch(other(to))),
        *canary(namespace, 0),
        f"# record it: the slots of {LIVE_SERVICE} and {CANDIDATE_SERVICE} in deploy/k8s/base/rasa-services.yaml",
    ]


def status(namespace: str) -> list[str]:
    """Which slot each Service selects, which image each slot runs, and the gateway's canary share."""
    selectors = "jsonpath={range .items[*]}{.metadata.name}{': '}{.spec.selector}{'\\n'}{end}"
    images = "jsonpath={range .items[*]}{.metadata.name}{': '}{.spec.template.spec.containers[0].image}{'\\n'}{end}"
    return [
        kubectl(namespace, "get", "service", LIVE_SERVICE, CANDIDATE_SERVICE, "--output", selectors),
        kubectl(namespace, "get", "deployment", deployment("blue"), deployment("green"), "--output", images),
        kubectl(namespace, "set", "env", f"deployment/{GATEWAY}", "--list"),
    ]


def percentage(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 100")
    return value


def image(text: str) -> str:
    if not IMAGE.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} names no version: use a tag other than latest or a digest (registry/rasa:0.2.0)"
        )
    return text


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad arguments: one line and exit status 2 (not argparse's usage block)."""
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parser() -> argparse.ArgumentParser:
    root = Parser(
        prog="python deploy/k8s/rollout.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument(
        "--namespace", default="switchboard", help="the overlays' namespace (default switchboard)"
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="command")
    commands.add_parser("status", help="which slot is live, which images run")
    staged = commands.add_parser("stage", help="the new model into the candidate slot")
    staged.add_argument("--slot", required=True, choices=SLOTS)
    staged.add_argument("--image", required=True, type=image)
    shared = commands.add_parser("canary", help="a share of users to the candidate slot (0 ends it)")
    shared.add_argument("--percent", required=True, type=percentage)
    switched = commands.add_parser("switch", help="make a slot live (blue-green switch, or rollback)")
    switched.add_argument("--to", required=True, choices=SLOTS)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    lines = {
        "status": lambda: status(args.namespace),
        "stage": lambda: stage(args.namespace, args.slot, args.image),
        "canary": lambda: canary(args.namespace, args.percent),
        "switch": lambda: switch(args.namespace, args.to),
    }[args.command]()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
