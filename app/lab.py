"""The data scientist's workbench: JupyterLab on the project, and its notebooks executed and rendered.

``python -m app.lab`` (what ``make lab`` calls) installs the project's kernel (:data:`KERNEL_NAME`) into the
environment it runs in (``--sys-prefix``: ``.venv/share/jupyter/kernels``, nothing in the user's home), starts
JupyterLab on loopback with a fresh token, prints the URL, and stops it on Ctrl-C or SIGTERM. Jupyter's
config, data and runtime files and IPython's profile go to ``<state_dir>/jupyter`` (git-ignored), so the
server sees the project's kernels and settings only. The kernel runs this interpreter with the offline
variables (:mod:`app.offline`) and the project root first on ``PYTHONPATH``, so ``import app``, ``nlu``,
``knowledge`` and ``pipelines`` give this checkout's modules.

:func:`execute` runs a notebook top to bottom with nbclient (the parameters injected after its cell tagged
``parameters``, as papermill does) and :func:`to_html` renders it with its outputs (nbconvert; charts are
inline PNGs, so the page opens offline). ``pipelines/notebooks.py`` (the DVC stage ``notebooks``) uses both.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from app.offline import apply_offline_env
from app.settings import ROOT, get_settings

KERNEL_NAME = "switchboard"
DISPLAY_NAME = "Switchboard (.venv)"
PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"


#: Charts drawn inline in the notebook, whatever backend the launching process chose (importing streamlit sets
#: ``MPLBACKEND=Agg`` in its environment, and a kernel inheriting it would draw no chart).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def kernel_env(root: Path = ROOT) -> dict[str, str]:
    """The variables the project kernel starts with: the offline ones, ``PYTHONPATH`` = the project root and the
    inline chart backend."""
    return {**apply_offline_env({}), "PYTHONPATH": str(root), "MPLBACKEND": INLINE_BACKEND}


def install_kernel(root: Path = ROOT, prefix: str = sys.prefix, env: Mapping[str, str] | None = None) -> Path:
    """Install (or refresh) the project kernel spec under ``prefix`` (``--sys-prefix`` by default) with
    ipykernel's own installer, run in ``env`` (IPython writes its profile where ``IPYTHONDIR`` says); its
    folder. RuntimeError with ipykernel's message when it fails."""
    extra = [arg for name, value in kernel_env(root).items() for arg in ("--env", name, value)]
    done = subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--prefix", prefix, "--name", KERNEL_NAME,
         "--display-name", DISPLAY_NAME, *extra],
        env=dict(env) if env is not None else jupyter_env(get_settings().state_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"could not install the kernel spec: {done.stderr.strip()[-500:]}")
    return Path(prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME


def jupyter_env(state_dir: Path) -> dict[str, str]:
    """The environment of the lab server (and its kernels): this process's, offline, with Jupyter's and
    IPython's own files under ``state_dir/jupyter`` instead of the user's home."""
    base = state_dir / "jupyter"
    env = apply_offline_env(dict(get_settings().environ()))
    env.update({
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
        "npm_config_cache": str(base / "npm"),  # JupyterLab asks npm about its build at start
    })  # fmt: skip
    env.pop("JUPYTER_PATH", None)  # kernels come from sys.prefix (the project's) and nowhere else
    return env


def lab_command(root: Path, host: str, port: int, token: str) -> list[str]:
    """JupyterLab in this interpreter, on ``host:port`` only, serving ``root``, no browser, no update checks or
    news feed (offline);
    Ctrl-C reaches it as SIGTERM from :func:`main` (no "shut down? y/n" prompt)."""
    return [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        f"--ServerApp.ip={host}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
        f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}", "--LabApp.extension_manager=readonly",
        *(["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []),  # containers and CI run as root
    ]  # fmt: skip


def wait_until_up(url: str, token: str, process: subprocess.Popen, timeout: float) -> None:
    """Until ``url/api/status`` answers 200; RuntimeError when the server exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not answer at {url} within {timeout:.0f} s")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m app.lab", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=settings.lab_port, help="default: SWITCHBOARD_LAB_PORT")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the server")
    args = parser.parse_args(argv)
    try:
        spec = install_kernel(ROOT)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    token = secrets.token_urlsafe(24)
    url = f"http://{settings.host}:{args.port}"
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"kernel {KERNEL_NAME!r} installed in {spec}", flush=True)
    print(f"starting JupyterLab (log in {logs / 'jupyterlab.log'}) ...", flush=True)
    with (logs / "jupyterlab.log").open("ab") as log:
        # its own session: Ctrl-C reaches this launcher only, which stops the server with SIGTERM
        process = subprocess.Popen(
            lab_command(ROOT, settings.host, args.port, token),
            env=jupyter_env(settings.state_dir),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_up(url, token, process, args.timeout)
            print(f"  jupyterlab {url}/lab?token={token}", flush=True)
            print(
                f"ready: open notebooks/ with the kernel {DISPLAY_NAME!r}. Press Ctrl-C to stop.", flush=True
            )
            return_code = process.wait()
            print(f"error: JupyterLab exited with code {return_code}", file=sys.stderr)
            return 1
        except RuntimeError as exc:
            print(f"error: {exc} (see {logs / 'jupyterlab.log'})", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
            return 0
        finally:
            stop(process)


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM to the server's process group (it shuts its kernels down), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    group = os.getpgid(process.pid)
    os.killpg(group, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        process.wait()


# --- notebooks executed and rendered -----------------------------------------------------------------------


def inject_parameters(notebook: Any, parameters: Mapping[str, Any]) -> Any:
    """A cell assigning ``parameters`` (as Python literals) after the cell tagged ``parameters`` (first
    when there is none), replacing one injected earlier; ``notebook`` is changed and returned."""
    import nbformat

    cells = [c for c in notebook.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    tagged = [i for i, c in enumerate(cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]
    source = "# Parameters injected by the notebooks stage\n" + "".join(
        f"{name} = {value!r}\n" for name, value in parameters.items()
    )
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": [INJECTED_TAG]})
    cells.insert(tagged[0] + 1 if tagged else 0, cell)
    notebook.cells = cells
    return notebook


def client_for(notebook: Any, cwd: Path, *, timeout: int = 300) -> Any:
    """An nbclient client that runs ``notebook`` in ``cwd`` on this interpreter's own kernel (ipykernel's
    native ``python3``, looked up nowhere else: a ``python3`` kernel in the user's home is not used)."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    return NotebookClient(notebook, km=manager, timeout=timeout, resources={"metadata": {"path": str(cwd)}})


def execute(path: Path, parameters: Mapping[str, Any], *, root: Path = ROOT, timeout: int = 300) -> Any:
    """``path`` executed top to bottom in its folder with ``parameters`` injected, by this interpreter's
    kernel with the project kernel's variables (:func:`kernel_env`); the executed notebook. A failing cell
    raises nbclient's ``CellExecutionError`` naming the cell and the error."""
    import nbformat

    notebook = inject_parameters(nbformat.read(path, as_version=4), parameters)
    client_for(notebook, path.parent, timeout=timeout).execute(cleanup_kc=True, env=execution_env(root))
    return notebook


def execution_env(root: Path = ROOT) -> dict[str, str]:
    """The environment a notebook's kernel starts with: the lab's (:func:`jupyter_env`: IPython's profile in the
    state folder, not the home) and the project kernel's variables."""
    return {**jupyter_env(get_settings().state_dir), **kernel_env(root)}


#: nbconvert's JupyterLab template without its scripts (require.js, MathJax, mermaid: fetched from a CDN, and
#: nothing in our notebooks needs them), so the page opens offline as it is.
OFFLINE_TEMPLATE = (
    "{%- extends 'lab/index.html.j2' -%}"
    "{%- block html_head_js -%}{%- endblock html_head_js -%}"
    "{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}"
    "{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}"
)


def to_html(notebook: Any) -> str:
    """The notebook as one self-contained HTML page with its outputs (charts as inline PNGs, no script)."""
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        extra_loaders=[jinja2.DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})],
        template_file="offline.html.j2",
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(notebook)
    return body


if __name__ == "__main__":
    sys.exit(main())
