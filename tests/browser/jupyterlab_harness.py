"""Run JupyterLab headless on 127.0.0.1 and drive it with Playwright + Debian's Chromium.

Nothing here downloads anything: Chromium is `/usr/bin/chromium` (installed by
`.ci/install-browser.sh`), Playwright is only the Python driver (never `playwright install`), and
JupyterLab serves its own Vega renderer and the ipywidgets manager from the virtual environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"
#: Every wait on the page is sized for a busy 2-core CI machine, not for speed: a wait ends as soon
#: as the state it waits for is there, so a long limit costs nothing when things go well.
WAIT_MS = 240_000
#: How long a keypress may take to show up (the prompt turns to [*]) before it is sent again.
KEYPRESS_RETRY_MS = 20_000


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_browser() -> None:
    """Skip (or, with CI=true, fail) when Chromium or the Playwright package is missing."""
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"{CHROMIUM} is missing (run .ci/install-browser.sh as root)")
    if importlib.util.find_spec("playwright") is None:
        problems.append("the `playwright` Python package is missing (pip install 'playwright>=1.45'; no browser download needed)")
    if not problems:
        return
    reason = "browser test needs Chromium and Playwright: " + "; ".join(problems)
    if in_ci():
        pytest.fail(reason + " — CI=true, so this test must run", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def install_kernel_spec() -> str:
    """Register the CommerceQL kernel spec in sys.prefix (the notebook itself uses python3)."""
    try:
        from commerceql_kernel.install import install_kernel_spec as install
    except Exception as exc:  # noqa: BLE001 - the kernel is optional for this notebook
        return f"CommerceQL kernel spec not installed ({type(exc).__name__}: {exc}); the notebook uses python3"
    try:
        return f"CommerceQL kernel spec installed in {install(sys_prefix=True)}"
    except Exception as exc:  # noqa: BLE001
        return f"CommerceQL kernel spec not installed ({type(exc).__name__}: {exc}); the notebook uses python3"


@dataclass
class LabServer:
    process: subprocess.Popen[bytes]
    port: int
    token: str
    root: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        separator = "&" if "?" in path else "?"
        return f"{self.base_url}{path}{separator}token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 5) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"{self.base_url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - localhost only
            return response.status, response.read()

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Shut the server (and its kernels) down; only this server's own process is signalled."""
        if self.process.poll() is None:
            try:
                self.api("/api/shutdown", method="POST")
            except (OSError, urllib.error.URLError):
                pass
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=5)


def _write_settings(settings_dir: Path) -> None:
    """User settings for a quiet test session: no news, no update checks."""
    notification = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}), encoding="utf-8")
    # Start the notebook's own kernel (python3) instead of asking which kernel to use.
    docmanager = settings_dir / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    docmanager.parent.mkdir(parents=True, exist_ok=True)
    docmanager.write_text(json.dumps({"autoStartDefaultKernel": True}), encoding="utf-8")


def dismiss_kernel_dialog(page, kernel_label: str = "Python 3 (ipykernel)") -> None:
    """Pick `kernel_label` in JupyterLab's "Select Kernel" dialog (which must be showing)."""
    dialog = page.locator(".jp-Dialog")
    select = dialog.locator("select")
    if select.count():
        labels = select.first.locator("option").all_text_contents()
        wanted = [label for label in labels if label.strip() == kernel_label]
        if wanted:
            select.first.select_option(label=wanted[0])
    dialog.locator(".jp-Dialog-button.jp-mod-accept").first.click()
    dialog.first.wait_for(state="hidden", timeout=WAIT_MS)


_IDLE = ".jp-Notebook-ExecutionIndicator[data-status='idle']"


def wait_for_idle_kernel(page, kernel_label: str = "Python 3 (ipykernel)", timeout_ms: int = WAIT_MS) -> None:
    """Wait until the notebook's kernel is idle, answering a "Select Kernel" dialog if one shows up.

    Waits on the page's state (dialog or idle indicator), whenever it appears; no fixed pause.
    """
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=timeout_ms)
    for _ in range(3):
        page.wait_for_selector(f".jp-Dialog, {_IDLE}", timeout=timeout_ms)
        if page.locator(".jp-Dialog").count():
            dismiss_kernel_dialog(page, kernel_label)
            continue
        return
    page.wait_for_selector(_IDLE, timeout=timeout_ms)


_FIRST_PROMPT = "document.querySelector('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')"

# JupyterLab's own "run cell" command on the first code cell (the app is exposed on `window` by
# start_lab's --LabApp.expose_app_in_browser): the same as the keypress, without the keyboard.
_RUN_FIRST_CELL = """async () => {
    const app = window.jupyterapp;
    const panel = app.shell.currentWidget;
    const notebook = panel.content;
    const index = notebook.widgets.findIndex(cell => cell.model.type === 'code');
    notebook.activeCellIndex = index;
    notebook.mode = 'command';
    await app.commands.execute('notebook:run-cell');
}"""


def run_first_code_cell(page, attempts: int = 4, kernel_label: str = "Python 3 (ipykernel)") -> None:
    """Run the notebook's first code cell and wait until the run has started ([*] or a count).

    On a loaded machine a keypress can get lost (focus not yet where the click put it), and
    JupyterLab may open its "Select Kernel" dialog late, over the notebook, swallowing the key.
    So each attempt first answers any such dialog, and when the prompt shows no run within
    KEYPRESS_RETRY_MS the cell is run again through JupyterLab's `notebook:run-cell` command.
    "Started" means the prompt reads [*] or [n]; an empty prompt turning into [ ] is not a run.
    """
    prompt = page.locator(".jp-NotebookPanel .jp-CodeCell .jp-InputPrompt").first
    started = f"() => {{ const p = {_FIRST_PROMPT}; return !!p && /\\[(\\*|\\d+)\\]/.test(p.textContent); }}"
    for attempt in range(attempts):
        if page.locator(".jp-Dialog").count():
            dismiss_kernel_dialog(page, kernel_label)
        if attempt == 0:
            prompt.click()
            page.keyboard.press("Shift+Enter")
        else:
            page.evaluate(_RUN_FIRST_CELL)
        try:
            page.wait_for_function(started, timeout=KEYPRESS_RETRY_MS)
            return
        except Exception:  # noqa: BLE001 - a Playwright timeout: try again
            continue
    raise AssertionError(f"the first code cell did not start after {attempts} attempts")


def eventually(check, timeout_ms: int = WAIT_MS, interval_ms: int = 250):  # type: ignore[no-untyped-def]
    """Call `check()` until it stops raising AssertionError (the page catching up), then return its value."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        time.sleep(interval_ms / 1000)


def start_lab(workdir: Path, notebooks: list[Path], timeout: float = WAIT_MS / 1000) -> LabServer:
    """Start JupyterLab on a random free port with a random token, serving copies of `notebooks`."""
    root = workdir / "root"
    root.mkdir(parents=True, exist_ok=True)
    for notebook in notebooks:
        shutil.copy(notebook, root / notebook.name)
    settings = workdir / "settings"
    _write_settings(settings)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(workdir / "config"),
        JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
        IPYTHONDIR=str(workdir / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.extension_manager=readonly",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run cells by command on retry
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers often run as root
        command.append("--allow-root")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LabServer(process=process, port=port, token=token, root=root, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{server.log()[-4000:]}")
        try:
            status, _ = server.api("/api/status", timeout=2)
            if status == 200:
                return server
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f}s:\n{server.log()[-4000:]}")
