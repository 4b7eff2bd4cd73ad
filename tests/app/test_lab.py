"""`make lab` (app/lab.py): JupyterLab on loopback with the project kernel, asked through its REST API; the
kernel itself, started, imports this checkout; parameters injected as papermill does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nbformat
import pytest

from app.lab import INJECTED_TAG, KERNEL_NAME, inject_parameters, install_kernel, jupyter_env
from tests.conftest import ROOT, free_port, guarded_env


def read_url(process: subprocess.Popen, timeout: float) -> tuple[str, list[str]]:
    """The URL line ``python -m app.lab`` prints once the server answers, and every line before it."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        lines.append(line.rstrip())
        if line.strip().startswith("jupyterlab http://"):
            return line.split()[1], lines
    pytest.fail(f"no URL from `python -m app.lab` (exit {process.poll()}):\n" + "\n".join(lines))


@pytest.mark.slow
def test_make_lab_serves_the_project_kernel_on_loopback_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, home = free_port(), tmp_path / "home"
    home.mkdir()
    env = guarded_env({"SWITCHBOARD_STATE_DIR": str(tmp_path / "state"), "HOME": str(home)})
    process = subprocess.Popen(
        [sys.executable, "-m", "app.lab", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url, _ = read_url(process, timeout=120)
        base, token = url.split("/lab?token=")
        assert base == f"http://127.0.0.1:{port}" and token

        assert httpx.get(f"{base}/api/kernelspecs", timeout=10).status_code == 403  # the token is required
        specs = httpx.get(f"{base}/api/kernelspecs", params={"token": token}, timeout=10)
        assert specs.status_code == 200
        body = specs.json()
        assert body["default"] == KERNEL_NAME
        spec = body["kernelspecs"][KERNEL_NAME]["spec"]
        assert spec["display_name"] == "Switchboard (.venv)"
        assert Path(spec["argv"][0]).resolve() == Path(sys.executable).resolve()  # the project's interpreter
        assert spec["env"]["PYTHONPATH"] == str(ROOT)  # imports this checkout's modules
        assert spec["env"]["HF_HUB_OFFLINE"] == "1" and spec["env"]["TRANSFORMERS_OFFLINE"] == "1"
        assert (Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json").is_file()

        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=30) == 0
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{base}/api/status", timeout=2)
        assert (
            list(home.iterdir()) == []
        )  # nothing in the user's home: Jupyter's files went to the state folder
        assert (tmp_path / "state" / "jupyter" / "runtime").is_dir()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_the_project_kernel_runs_this_checkout_offline(tmp_path: Path) -> None:
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = install_kernel(ROOT, prefix=str(tmp_path), env=jupyter_env(tmp_path / "state"))
    assert spec_dir == tmp_path / "share" / "jupyter" / "kernels" / KERNEL_NAME
    specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)], ensure_native_kernel=False)
    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    manager.start_kernel(env={k: v for k, v in guarded_env().items() if k != "PYTHONPATH"}, cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        printed: list[str] = []
        reply = client.execute_interactive(
            "import os, app.lab; print(app.lab.__file__, os.environ['HF_HUB_OFFLINE'])",
            timeout=60,
            output_hook=lambda msg: printed.append(msg["content"].get("text", "")),
        )
        assert reply["content"]["status"] == "ok"
        module, offline = "".join(printed).split()
        assert Path(module) == ROOT / "app" / "lab.py" and offline == "1"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_parameters_are_injected_after_the_parameters_cell_once() -> None:
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("# What it answers"),
            nbformat.v4.new_code_cell('ROOT = ".."', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("print(ROOT)"),
        ]
    )
    inject_parameters(notebook, {"ROOT": "/elsewhere", "RESULTS": {"nlu_results": "x"}})
    inject_parameters(notebook, {"ROOT": "/project"})  # again: replaces the first injection
    injected = [c for c in notebook.cells if INJECTED_TAG in c.metadata.get("tags", [])]
    assert len(injected) == 1 and notebook.cells[2] is injected[0]
    assert "ROOT = '/project'\n" in injected[0].source and "RESULTS" not in injected[0].source
    namespace: dict = {}
    exec(notebook.cells[1].source + "\n" + injected[0].source, namespace)  # noqa: S102
    assert namespace["ROOT"] == "/project"


def test_a_notebook_without_a_parameters_cell_gets_them_first() -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    inject_parameters(notebook, {"ROOT": "/project"})
    assert INJECTED_TAG in notebook.cells[0].metadata["tags"] and notebook.cells[1].source == "x = 1"
