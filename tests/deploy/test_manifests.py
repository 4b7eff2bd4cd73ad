"""The Kubernetes manifests (deploy/k8s), rendered offline: ``kubectl kustomize`` builds each overlay,
``kubernetes-validate`` checks them against the API schemas of the Kubernetes versions we state, ``checkov``
runs its security checks, and the rules below hold (probes, resources, autoscalers, disruption budgets,
secrets by reference, who reaches whom). No cluster is involved; the last tests show each check refuses a bad
manifest."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.deploy.conftest import OVERLAYS, documents, run_tool
from tests.deploy.test_dockerfiles import instructions

# The Kubernetes API versions the manifests are validated against (README "Deploying on Kubernetes"): the oldest
# we support and the newest kubernetes-validate ships schemas for.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")
# checkov's checks, all enforced but these (each with its reason)
CHECKOV_SKIPS = {
    "CKV_K8S_43": "image digests: known only after a push; the overlays pin tags (set digests when you release)",
    "CKV_K8S_35": "secrets as files: the services read SWITCHBOARD_* from the environment (pydantic-settings); "
    "the values come from the Secret by reference",
}
AUTOSCALED = {"switchboard-rasa-blue", "switchboard-rasa-green", "switchboard-actions"}
# env variables whose values are credentials (or URLs that carry them): only ever from the Secret
SECRET_ENV = {
    "SWITCHBOARD_JWT_SECRET",
    "SWITCHBOARD_CHANNEL_SECRET",
    "SWITCHBOARD_API_KEY_SECRET",
    "SWITCHBOARD_DATABASE_URL",
    "SWITCHBOARD_TRACKER_STORE_URL",
    "SWITCHBOARD_LOCK_STORE_URL",
    "SWITCHBOARD_EVENT_BROKER_URL",
    "SWITCHBOARD_CACHE_REDIS_URL",
    "SWITCHBOARD_GATEWAY_STORAGE_URL",
}
# who may reach whom (NetworkPolicy ingress): pod name label -> the only pods allowed in
ONLY_FROM = {"switchboard-rasa": {"switchboard-gateway"}, "switchboard-actions": {"switchboard-rasa"}}


def pod_specs(docs: list[dict]) -> dict[str, dict]:
    """Workload name -> pod spec (Deployments and Jobs)."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in {"Deployment", "Job"}
    }


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def policy_problems(docs: list[dict]) -> list[str]:
    """What the rendered manifests get wrong by our rules (empty: nothing)."""
    problems: list[str] = []
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    hpas = {d["spec"]["scaleTargetRef"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    if any(kind == "Secret" for kind, _ in kinds):
        problems.append("a Secret is rendered: secrets are referenced, never shipped")
    for name in sorted(AUTOSCALED - hpas):
        problems.append(f"{name}: no HorizontalPodAutoscaler")
    for name, spec in pod_specs(docs).items():
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{name}: pod may run as root")
        workload = next(
            d for d in docs if d["metadata"]["name"] == name and d["kind"] in {"Deployment", "Job"}
        )
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name}/{container['name']}"
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(kind, {})):
                    problems.append(f"{where}: no cpu and memory {kind}")
            security = container.get("securityContext", {})
            if security.get("allowPrivilegeEscalation") is not False or not security.get(
                "readOnlyRootFilesystem"
            ):
                problems.append(f"{where}: privilege escalation or a writable root file system")
            serving = workload["kind"] == "Deployment" and container in spec["containers"]
            for probe in ("readinessProbe", "livenessProbe") if serving else ():
                if "httpGet" not in container.get(probe, {}):
                    problems.append(f"{where}: no HTTP {probe}")
            for env in container.get("env", []):
                if env["name"] in SECRET_ENV and "secretKeyRef" not in env.get("valueFrom", {}):
                    problems.append(f"{where}: {env['name']} is not read from the Secret")
    for d in deployments:
        name, labels = d["metadata"]["name"], d["spec"]["template"]["metadata"]["labels"]
        if name in hpas and "replicas" in d["spec"]:
            problems.append(f"{name}: `replicas` fights its HorizontalPodAutoscaler")
        if (name in hpas or d["spec"].get("replicas", 1) > 1) and not any(
            selects(p["spec"]["selector"], labels) for p in pdbs
        ):
            problems.append(f"{name}: several replicas and no PodDisruptionBudget")
    for d in docs:
        if d["kind"] == "ConfigMap":
            leaked = SECRET_ENV & set(d.get("data", {}))
            if leaked:
                problems.append(f"ConfigMap {d['metadata']['name']} holds {sorted(leaked)}")
    problems += network_problems(docs)
    return problems


def network_problems(docs: list[dict]) -> list[str]:
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    problems = []
    if not any(p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") for p in policies):
        problems.append("no default-deny ingress NetworkPolicy")
    for target, allowed in ONLY_FROM.items():
        labels = {"app.kubernetes.io/name": target}
        for policy in policies:
            if not selects(policy["spec"]["podSelector"], labels) or policy["spec"]["podSelector"] == {}:
                continue
            for rule in policy["spec"].get("ingress", []):
                peers = rule.get("from")
                if not peers:
                    problems.append(f"{policy['metadata']['name']}: anyone reaches {target}")
                    continue
                for peer in peers:
                    name = (
                        (peer.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                    )
                    if name not in allowed or set(peer) != {"podSelector"}:
                        problems.append(f"{policy['metadata']['name']}: {peer} reaches {target}")
    return problems


@pytest.fixture(scope="module")
def parsed(rendered: dict[str, str]) -> dict[str, list[dict]]:
    return {name: documents(stream) for name, stream in rendered.items()}


def test_both_overlays_render_every_part(parsed: dict[str, list[dict]]):
    for name, docs in parsed.items():
        kinds = {d["kind"] for d in docs}
        assert {
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
        } <= kinds
        assert {"ConfigMap", "Namespace", "Job"} <= kinds
        assert all(
            d["metadata"].get("namespace") == "switchboard" for d in docs if d["kind"] != "Namespace"
        ), name
    small = {d["metadata"]["name"] for d in parsed["small"] if d["kind"] == "Deployment"}
    production = {d["metadata"]["name"] for d in parsed["production"] if d["kind"] == "Deployment"}
    assert small - production == {"switchboard-crm"}, "the CRM stand-in is for the small overlay only"


def test_the_rendered_manifests_follow_our_rules(parsed: dict[str, list[dict]]):
    for name, docs in parsed.items():
        assert policy_problems(docs) == [], name


def test_params_yaml_reaches_the_pods_unchanged(parsed: dict[str, list[dict]]):
    for docs in parsed.values():
        (params,) = [
            d
            for d in docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("switchboard-params")
        ]
        assert params["data"]["params.yaml"] == (ROOT / "params.yaml").read_text()
        for name, spec in pod_specs(docs).items():
            mounted = [
                v for v in spec["volumes"] if v.get("configMap", {}).get("name") == params["metadata"]["name"]
            ]
            assert mounted, f"{name} does not mount params.yaml"


def test_rasa_gets_the_params_values_it_cannot_read_itself(parsed: dict[str, list[dict]]):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    wanted = {
        "SWITCHBOARD_TENANT": str(params["base"]["tenant"]),
        "SWITCHBOARD_MAX_MESSAGE_CHARS": str(params["serve"]["max_message_chars"]),
    }
    for docs in parsed.values():
        for slot in ("blue", "green"):
            rasa = pod_specs(docs)[f"switchboard-rasa-{slot}"]["containers"][0]
            env = {e["name"]: e.get("value") for e in rasa["env"]}
            assert {name: env.get(name) for name in wanted} == wanted


def test_every_image_names_a_version(parsed: dict[str, list[dict]]):
    for docs in parsed.values():
        for spec in pod_specs(docs).values():
            for container in spec.get("initContainers", []) + spec["containers"]:
                repository, _, tag = container["image"].rpartition(":")
                assert repository and tag and tag != "latest" and "/" not in tag, container["image"]


def test_blue_green_services_each_select_one_slot(parsed: dict[str, list[dict]]):
    for docs in parsed.values():
        services = {d["metadata"]["name"]: d["spec"]["selector"] for d in docs if d["kind"] == "Service"}
        slots = {
            services["switchboard-rasa"]["switchboard/slot"],
            services["switchboard-rasa-candidate"]["switchboard/slot"],
        }
        assert slots == {"blue", "green"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_validate_accepts_the_overlays(rendered: dict[str, str], version: str, tmp_path: Path):
    for name, stream in rendered.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(stream)
        done = run_tool("kubernetes-validate", "--strict", "--quiet", "-k", version, path)
        assert done.returncode == 0, done.stdout + done.stderr


def test_kubernetes_validate_refuses_an_unknown_field(rendered: dict[str, str], tmp_path: Path):
    docs = documents(rendered["production"])
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {
        "httpGet": {"path": "/", "port": 80}
    }
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    done = run_tool("kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSIONS[-1], path)
    assert done.returncode != 0 and "readinesProbe" in done.stdout + done.stderr


def checkov(path: Path, framework: str) -> dict:
    done = run_tool(
        "checkov", "--skip-download", "--quiet", "--compact", "--output", "json", "--framework", framework,
        "--skip-check", ",".join(CHECKOV_SKIPS), "--directory" if path.is_dir() else "--file", path,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    return report if isinstance(report, dict) else {"results": {"failed_checks": []}, "summary": {}}


def failed(report: dict) -> list[str]:
    return [f"{c['check_id']} {c['resource']}" for c in report.get("results", {}).get("failed_checks", [])]


@pytest.mark.parametrize("name", OVERLAYS)
def test_checkov_passes_the_overlays(rendered: dict[str, str], name: str, tmp_path: Path):
    path = tmp_path / f"{name}.yaml"
    path.write_text(rendered[name])
    report = checkov(path, "kubernetes")
    assert failed(report) == []
    assert report["summary"]["passed"] > 100  # it did check


def test_checkov_passes_the_dockerfiles():
    report = checkov(ROOT / "deploy" / "docker", "dockerfile")
    assert failed(report) == []
    assert report["summary"]["passed"] > 0


def test_checkov_refuses_a_privileged_container(rendered: dict[str, str], tmp_path: Path):
    docs = documents(rendered["production"])
    deployment = next(
        d for d in docs if d["metadata"]["name"] == "switchboard-gateway" and d["kind"] == "Deployment"
    )
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    path = tmp_path / "privileged.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    assert "CKV_K8S_16 Deployment.switchboard.switchboard-gateway" in failed(checkov(path, "kubernetes"))


def broken(docs: list[dict], change) -> list[dict]:
    docs = copy.deepcopy(docs)
    change(docs)
    return docs


def find(docs: list[dict], kind: str, name: str) -> dict:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_our_rules_refuse_what_they_forbid(parsed: dict[str, list[dict]]):
    docs = parsed["production"]

    def no_probe(ds):
        find(ds, "Deployment", "switchboard-actions")["spec"]["template"]["spec"]["containers"][0].pop(
            "readinessProbe"
        )

    def secret_value(ds):
        container = find(ds, "Deployment", "switchboard-gateway")["spec"]["template"]["spec"]["containers"][0]
        container["env"].append({"name": "SWITCHBOARD_JWT_SECRET", "value": "x" * 32})

    def anyone_to_rasa(ds):
        find(ds, "NetworkPolicy", "switchboard-rasa-from-gateway")["spec"]["ingress"].append(
            {"ports": [{"port": 5005}]}
        )

    def no_hpa(ds):
        ds.remove(find(ds, "HorizontalPodAutoscaler", "switchboard-actions"))

    def no_pdb(ds):
        ds.remove(find(ds, "PodDisruptionBudget", "switchboard-rasa-green"))

    def no_limits(ds):
        find(ds, "Deployment", "switchboard-rasa-blue")["spec"]["template"]["spec"]["initContainers"][0][
            "resources"
        ].pop("limits")

    expected = {
        no_probe: "switchboard-actions/actions: no HTTP readinessProbe",
        secret_value: "switchboard-gateway/gateway: SWITCHBOARD_JWT_SECRET is not read from the Secret",
        anyone_to_rasa: "switchboard-rasa-from-gateway: anyone reaches switchboard-rasa",
        no_hpa: "switchboard-actions: no HorizontalPodAutoscaler",
        no_pdb: "switchboard-rasa-green: several replicas and no PodDisruptionBudget",
        no_limits: "switchboard-rasa-blue/rasa-files: no cpu and memory limits",
    }
    for change, problem in expected.items():
        assert policy_problems(broken(docs, change)) == [problem], change.__name__


def test_readiness_probes_ask_what_the_images_healthchecks_ask(parsed: dict[str, list[dict]]):
    """Each container's readiness probe: the port and path of its image's HEALTHCHECK (deploy/docker)."""
    healthchecks = {}
    for path in (ROOT / "deploy" / "docker").glob("*.Dockerfile"):
        port, url_path = re.search(r"http://127\.0\.0\.1:(\d+)(/[^']*)'", path.read_text()).groups()
        healthchecks[path.name.removesuffix(".Dockerfile")] = (int(port), url_path)
    for docs in parsed.values():
        for d in docs:
            if d["kind"] != "Deployment":
                continue
            for container in d["spec"]["template"]["spec"]["containers"]:
                role = container["image"].rpartition(":")[0].rsplit("/", 1)[-1]
                ports = {p["name"]: p["containerPort"] for p in container["ports"]}
                probe = container["readinessProbe"]["httpGet"]
                assert (ports[probe["port"]], probe["path"]) == healthchecks[role], d["metadata"]["name"]


def test_rasa_reads_the_files_its_init_container_writes(parsed: dict[str, list[dict]]):
    """The Rasa image's command reads endpoints and credentials from the state dir that ``python -m app.scaleout``
    writes them to in the init container, on a volume both containers mount."""
    cmd = next(
        ins.args
        for ins in instructions((ROOT / "deploy/docker/rasa.Dockerfile").read_text())
        if ins.keyword == "CMD"
    )
    argv = json.loads(cmd)
    read = {Path(argv[argv.index(flag) + 1]) for flag in ("--endpoints", "--credentials")}
    for docs in parsed.values():
        env = next(
            d
            for d in docs
            if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("switchboard-env")
        )
        state_dir = Path(env["data"]["SWITCHBOARD_STATE_DIR"])
        assert read == {state_dir / "endpoints.yml", state_dir / "credentials.yml"}
        for slot in ("blue", "green"):
            spec = pod_specs(docs)[f"switchboard-rasa-{slot}"]
            (init,) = spec["initContainers"]
            assert init["command"] == ["python", "-m", "app.scaleout"]
            mounts = [
                {m["name"] for m in c["volumeMounts"] if state_dir.is_relative_to(m["mountPath"])}
                for c in (init, spec["containers"][0])
            ]
            assert mounts[0] & mounts[1], "no shared volume under the state dir"
