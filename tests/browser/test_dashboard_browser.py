"""`commerceql serve` in a real browser: the B2B dashboard served by Voilà, driven with Debian's Chromium.

Starts `commerceql serve notebooks/dashboard_b2b.ipynb` on a free port (127.0.0.1, the token it
prints), loads the page once and, like an account manager would, switches the control bar to
`company_tier` and then to *Last quarter*. Checked from the page: no code is shown, the table and
the Vega chart follow both changes, the last-quarter net sales per tier equal a hand-written DuckDB
query over the store's Parquet files, no request leaves 127.0.0.1, and a script on the page cannot
make the kernel execute code (its `execute_request` is dropped by the server). Ctrl-C (SIGINT)
then stops the server and its kernel. A screenshot goes to artifacts/browser/dashboard_b2b.png.

The browser test skips when /usr/bin/chromium or the playwright package is missing, unless CI=true
(then it fails). The other tests here check `commerceql serve`'s refusals without a browser.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
from jupyterlab_harness import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    WAIT_MS,
    eventually,
    free_port,
    require_browser,
)

from commerceql.dashboard import (
    PAGE_MESSAGE_TYPES,
    check_notebook,
    check_voila_guards,
    is_loopback,
    run_serve,
)
from commerceql.errors import CommerceQLError

NOTEBOOK = REPO / "notebooks" / "dashboard_b2b.ipynb"
COMMERCEQL = Path(sys.executable).with_name("commerceql")
TIERS = {"Enterprise", "Mid-market", "Small business"}


# ---------------------------------------------------------------------------------------------
# Expected values: hand-written SQL over the Parquet files (not the compiler, not the model)
# ---------------------------------------------------------------------------------------------


def _last_quarter(as_of: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    this_quarter = dt.datetime(as_of.year, 3 * ((as_of.month - 1) // 3) + 1, 1)
    year, month = (this_quarter.year, this_quarter.month - 3) if this_quarter.month > 3 else (this_quarter.year - 1, 10)
    return dt.datetime(year, month, 1), this_quarter


def _money(value) -> str:
    return f"-${abs(value):,.2f}" if value < 0 else f"${value:,.2f}"


def expected_b2b_by_tier(store_path: Path) -> dict[str, str]:
    """Net sales of company orders per company tier, last quarter in the store's time zone, formatted."""
    manifest = json.loads((store_path / "manifest.json").read_text(encoding="utf-8"))
    timezone = manifest["timezone"]
    as_of = dt.datetime.fromisoformat(manifest["as_of"]).astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    start, end = _last_quarter(as_of)
    sales = (store_path / manifest["tables"]["sales"]).as_posix()
    companies = (store_path / manifest["tables"]["companies"]).as_posix()
    rows = duckdb.sql(
        f"""
        SELECT c.tier, SUM(s.net_sales) AS net_sales
        FROM read_parquet('{sales}') s JOIN read_parquet('{companies}') c ON s.company_id = c.company_id
        WHERE timezone('{timezone}', s.happened_at) >= TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}'
          AND timezone('{timezone}', s.happened_at) <  TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'
        GROUP BY c.tier
        """
    ).fetchall()
    return {tier: _money(total) for tier, total in rows}


# ---------------------------------------------------------------------------------------------
# The server: `commerceql serve` as a user starts it
# ---------------------------------------------------------------------------------------------


class DashboardProcess:
    """`commerceql serve NOTEBOOK --port PORT --no-browser`, its output collected line by line."""

    def __init__(self, notebook: Path, workdir: Path, *, browser_command: str | None = None) -> None:
        self.port = free_port()
        env = dict(os.environ)
        # A private Jupyter configuration: no config file of this machine changes what is served.
        env.update(
            JUPYTER_CONFIG_DIR=str(workdir / "config"),
            JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
            IPYTHONDIR=str(workdir / "ipython"),
            PYTHONUNBUFFERED="1",
        )
        for name in ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE"):
            env.pop(name, None)  # Jupyter's default: a random token, printed in the URL
        if browser_command is not None:
            env["BROWSER"] = browser_command  # the browser Python's webbrowser module starts
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [str(COMMERCEQL), "serve", str(notebook), "--port", str(self.port)]
            + (["--no-browser"] if browser_command is None else []),
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_url(self, timeout_s: float = WAIT_MS / 1000) -> str:
        """The URL (with its token) `commerceql serve` prints once it listens."""
        deadline = dt.datetime.now() + dt.timedelta(seconds=timeout_s)
        while True:
            remaining = (deadline - dt.datetime.now()).total_seconds()
            try:
                line = self._queue.get(timeout=max(remaining, 0.1))
            except queue.Empty:
                raise AssertionError(f"no URL within {timeout_s:.0f}s:\n{self.log()[-4000:]}") from None
            if line is None:
                raise AssertionError(f"commerceql serve exited with {self.process.wait()}:\n{self.log()[-4000:]}")
            if line.startswith("CommerceQL dashboard: "):
                return line.split(": ", 1)[1].strip()

    def interrupt(self, timeout_s: float = 120) -> int:
        """Ctrl-C: SIGINT to this process only; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


# ---------------------------------------------------------------------------------------------
# Page helpers (the control bar's markup: see tests/browser/test_widgets_browser.py)
# ---------------------------------------------------------------------------------------------


def table_rows(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        ".cql-explore .cql-explore-table tbody tr",
        "rows => rows.map(r => Array.from(r.querySelectorAll('td')).map(td => td.textContent.trim()))",
    )


def table_columns(page) -> list[str]:
    """The column names of the control bar's table (each header's title reads `name: description`)."""
    return page.eval_on_selector_all(
        ".cql-explore .cql-explore-table thead th", "ths => ths.map(th => (th.title || th.textContent).split(':')[0].trim())"
    )


def revision(page) -> int:
    return int(page.evaluate("() => Number(document.querySelector('.cql-explore .cql-explore-table').dataset.revision)"))


def chart_text(page) -> str:
    return page.evaluate(
        """() => {
            const svg = document.querySelector('.cql-explore .cql-chart svg');
            if (!svg) return '';
            const parts = Array.from(svg.querySelectorAll('text')).map(t => t.textContent);
            svg.querySelectorAll('[aria-label]').forEach(e => parts.push(e.getAttribute('aria-label')));
            return parts.join('\\n');
        }"""
    )


def wait_for_update(page, before: int) -> None:
    """Until the control bar shows a newer table and a drawn chart (the DOM changing, no pause)."""
    page.wait_for_function(
        """(before) => {
            const d = document.querySelector('.cql-explore .cql-explore-table');
            const svg = document.querySelector('.cql-explore .cql-chart svg');
            return d && Number(d.dataset.revision) > before && svg && svg.querySelector('text');
        }""",
        arg=before,
        timeout=WAIT_MS,
    )


def select(page, css: str, label_start: str) -> None:
    """Pick the first option whose label starts with `label_start`.

    The page knows an ipywidgets Dropdown's labels only: each option's value attribute is its label.
    """
    labels = page.eval_on_selector_all(f".cql-explore {css} select option", "os => os.map(o => o.value)")
    matching = [label for label in labels if label.startswith(label_start)]
    assert matching, labels
    page.locator(f".cql-explore {css} select").select_option(value=matching[0])


# A script on the page opens its own connection to the kernel and asks it to run code, then asks
# for kernel_info. The kernel answers shell requests in order, so once the kernel_info_reply is
# back, an execute_request that had reached the kernel would have been answered (and run) already.
_TRY_EXECUTE = """async ({kernelId, code}) => {
    const url = `${location.origin.replace(/^http/, 'ws')}/api/kernels/${kernelId}/channels?session_id=probe-${Date.now()}`;
    const ws = new WebSocket(url);
    const header = (type) => ({msg_id: `${type}-${Math.random()}`, username: 'page', session: 'probe',
                               msg_type: type, version: '5.3', date: new Date().toISOString()});
    const execute = header('execute_request');
    const info = header('kernel_info_request');
    const answered = [];
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    const done = new Promise((resolve) => {
        ws.onmessage = (event) => {
            if (typeof event.data !== 'string') return;
            const message = JSON.parse(event.data);
            const parent = message.parent_header && message.parent_header.msg_id;
            if (parent === execute.msg_id) answered.push(message.msg_type || message.header.msg_type);
            if (parent === info.msg_id && message.header.msg_type === 'kernel_info_reply') resolve();
        };
    });
    const send = (head, content) => ws.send(JSON.stringify(
        {header: head, parent_header: {}, metadata: {}, content: content, channel: 'shell', buffers: []}));
    send(execute, {code: code, silent: false, store_history: false, user_expressions: {}, allow_stdin: false, stop_on_error: true});
    send(info, {});
    await done;
    ws.close();
    return answered;
}"""


# ---------------------------------------------------------------------------------------------
# The browser test
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.browser
def test_served_dashboard_in_chromium(sample_store_path):
    require_browser()
    from playwright.sync_api import sync_playwright

    expected = expected_b2b_by_tier(Path(sample_store_path))
    assert set(expected) == TIERS, expected
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console: list[str] = []
    with tempfile.TemporaryDirectory(prefix="cql-dashboard-") as workdir:
        marker = Path(workdir) / "page_ran_code.txt"
        server = DashboardProcess(NOTEBOOK, Path(workdir))
        try:
            url = server.wait_for_url()
            base = f"http://127.0.0.1:{server.port}"
            assert url.startswith(f"{base}/?token="), url
            # Without the token the dashboard is not shown (Jupyter's login page instead).
            answer = first_answer(f"{base}/")
            assert answer.status in (302, 403), answer.status
            assert "/login" in (answer.headers.get("Location") or "/login")

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    context = browser.new_context(viewport={"width": 1300, "height": 1800})
                    context.set_default_timeout(WAIT_MS)
                    page = context.new_page()
                    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
                    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
                    outside: list[str] = []
                    page.on(
                        "request",
                        lambda request: outside.append(request.url)
                        if not request.url.startswith((base, "data:", "blob:", "about:"))
                        else None,
                    )
                    page.on(
                        "websocket",
                        lambda socket: outside.append(socket.url)
                        if not socket.url.startswith(f"ws://127.0.0.1:{server.port}/")
                        else None,
                    )

                    # -- one page load: Voilà runs the notebook, the page shows outputs only
                    # The first load runs the whole notebook in a new kernel: on a crowded machine
                    # that is the slow step, so it gets twice the usual limit.
                    page.goto(url, wait_until="domcontentloaded")
                    page.wait_for_selector(".cql-explore .cql-explore-table table", timeout=2 * WAIT_MS)
                    page.wait_for_selector(".cql-explore .cql-chart svg text", timeout=WAIT_MS)
                    page.wait_for_function("() => document.querySelectorAll('table').length >= 4", timeout=2 * WAIT_MS)
                    html = page.content()
                    for source in ("%load_ext", "%%cql", "cql_connect", "explore(store", "FROM companies\n"):
                        assert source not in html, f"notebook code {source!r} is in the page"
                    # Code cells show their outputs only: no input area, prompt or editor (markdown
                    # cells are rendered in an input area of their own).
                    assert page.locator(".jp-CodeCell .jp-InputArea, .jp-InputPrompt, .cm-editor, .CodeMirror").count() == 0
                    assert page.locator(".jp-CodeCell").count() >= 4
                    for heading in ("Net sales by billing region and company tier", "Top accounts this year", "Overdue accounts to call"):
                        assert page.get_by_role("heading", name=heading).count() == 1, heading
                    assert page.locator(".cql-explore .cql-export, .cql-explore .cql-export-path").count() == 0
                    assert table_columns(page) == ["billing_region", "net_sales", "orders"]
                    regions = [row[0] for row in table_rows(page)]
                    assert "California" in regions and "Other" in regions, regions
                    eventually(lambda: _assert_in("California", chart_text(page)))

                    # -- group by company tier instead of billing region
                    before = revision(page)
                    select(page, ".cql-dimension", "Company tier")
                    wait_for_update(page, before)
                    assert table_columns(page) == ["company_tier", "net_sales", "orders"]
                    assert {row[0] for row in table_rows(page)} == TIERS

                    def chart_by_tier() -> None:
                        text = chart_text(page)
                        assert "California" not in text and "Enterprise" in text, text[:2000]

                    eventually(chart_by_tier)
                    this_year = {row[0]: row[1] for row in table_rows(page)}

                    # -- last quarter: the numbers of the hand-written query
                    before = revision(page)
                    select(page, ".cql-date-range", "Last quarter")
                    wait_for_update(page, before)
                    shown = {row[0]: row[1] for row in table_rows(page)}
                    assert shown == expected, (shown, expected)
                    assert shown != this_year
                    assert "DURING last_quarter" in page.locator(".cql-explore .cql-query textarea").input_value()
                    top_tier = max(expected, key=lambda tier: float(expected[tier].replace("$", "").replace(",", "")))
                    eventually(lambda: _assert_in(top_tier, chart_text(page)))
                    page.screenshot(path=str(ARTIFACTS / "dashboard_b2b.png"), full_page=True)

                    # -- a script on the page cannot make the kernel run code
                    config = json.loads(page.locator("#jupyter-config-data").text_content() or "{}")
                    answered = page.evaluate(
                        _TRY_EXECUTE,
                        {"kernelId": config["kernelId"], "code": f"open({str(marker)!r}, 'w').write('ran')"},
                    )
                    assert answered == [], answered
                    assert not marker.exists()
                    assert 'Received message of type "execute_request", which is not allowed' in server.log()

                    assert not outside, f"requests left 127.0.0.1: {outside[:5]}"
                    assert not [line for line in console if line.startswith("pageerror")], console
                except Exception:
                    page.screenshot(path=str(ARTIFACTS / "dashboard_failure.png"), full_page=True)
                    raise
                finally:
                    browser.close()
            # -- Ctrl-C stops the server cleanly, its kernel with it
            assert server.interrupt() == 0, server.log()[-4000:]
            assert "Kernel shutdown" in server.log() and "Traceback" not in server.log(), server.log()[-4000:]
        finally:
            server.kill()
            (ARTIFACTS / "dashboard_server.log").write_text(server.log(), encoding="utf-8")
            (ARTIFACTS / "dashboard_console.log").write_text("\n".join(console), encoding="utf-8")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003 - urllib's signature
        return None


def first_answer(url: str):  # type: ignore[no-untyped-def]
    """The server's first answer to a GET of `url` (a redirect is returned, not followed)."""
    try:
        return urllib.request.build_opener(_NoRedirect).open(url, timeout=30)  # noqa: S310 - localhost only
    except urllib.error.HTTPError as error:
        return error


def _assert_in(needle: str, haystack: str) -> None:
    assert needle in haystack, haystack[:2000]


# ---------------------------------------------------------------------------------------------
# Refusals and guards, without a browser
# ---------------------------------------------------------------------------------------------


def _serve_args(notebook: Path | str, host: str = "127.0.0.1", port: int = 8866) -> argparse.Namespace:
    return argparse.Namespace(notebook=str(notebook), host=host, port=port, no_browser=True)


def test_serve_refuses_a_missing_notebook(tmp_path):
    with pytest.raises(CommerceQLError) as caught:
        run_serve(_serve_args(tmp_path / "nowhere.ipynb"))
    assert "no notebook at" in caught.value.message and caught.value.hint


def test_serve_refuses_what_is_not_an_ipynb_file(tmp_path):
    query = tmp_path / "report.cql"
    query.write_text("FROM sales SHOW net_sales", encoding="utf-8")
    with pytest.raises(CommerceQLError) as caught:
        check_notebook(query)
    assert "not a notebook" in caught.value.message and ".ipynb" in caught.value.hint
    folder = tmp_path / "folder.ipynb"
    folder.mkdir()  # Voilà would serve a directory as a file tree
    with pytest.raises(CommerceQLError, match="not a file"):
        check_notebook(folder)


def test_serve_refuses_a_notebook_without_an_installed_kernel(tmp_path):
    notebook = tmp_path / "odd.ipynb"
    notebook.write_text(
        json.dumps({"cells": [], "metadata": {"kernelspec": {"name": "no-such-kernel-here", "display_name": "?"}},
                    "nbformat": 4, "nbformat_minor": 5}),
        encoding="utf-8",
    )
    with pytest.raises(CommerceQLError, match="kernel `no-such-kernel-here` is not installed"):
        run_serve(_serve_args(notebook))


def test_serve_cli_prints_the_error_with_its_hint(tmp_path):
    process = subprocess.run(
        [str(COMMERCEQL), "serve", str(tmp_path / "missing.ipynb")], capture_output=True, text=True, timeout=120
    )
    assert process.returncode == 2
    assert "no notebook at" in process.stderr and "hint" in process.stderr and "Traceback" not in process.stderr


def test_serve_warns_off_loopback_and_refuses_a_port_in_use(capsys):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommerceQLError) as caught:
            run_serve(_serve_args(NOTEBOOK, host="0.0.0.0", port=port))
    assert f"port {port} on 0.0.0.0 is already in use" in caught.value.message and "--port" in caught.value.hint
    warning = capsys.readouterr().err
    assert warning.startswith("warning: serving on 0.0.0.0, not only this machine"), warning


@pytest.mark.slow
def test_serve_opens_the_browser_with_the_token(tmp_path):
    """Without --no-browser the browser gets the dashboard's address with its token, not the login page."""
    recorded = tmp_path / "opened.html"
    recorder = tmp_path / "browser.py"
    # A stand-in browser: keeps a copy of the page it was asked to open.
    recorder.write_text(
        "import os, sys, shutil, urllib.parse, urllib.request\n"
        "shutil.copy(urllib.request.url2pathname(urllib.parse.urlparse(sys.argv[1]).path), sys.argv[2] + '.part')\n"
        "os.replace(sys.argv[2] + '.part', sys.argv[2])\n",  # the test never reads half a copy
        encoding="utf-8",
    )
    server = DashboardProcess(NOTEBOOK, tmp_path, browser_command=f"{sys.executable} {recorder} %s {recorded}")
    try:
        url = server.wait_for_url()
        assert "?token=" in url
        opened = eventually(lambda: _read_when_there(recorded), timeout_ms=120_000)
        assert f'url={url}"' in opened, opened
        assert server.interrupt() == 0, server.log()[-4000:]
    finally:
        server.kill()


def _read_when_there(path: Path) -> str:
    assert path.exists() and path.stat().st_size, f"{path} not written yet"
    return path.read_text(encoding="utf-8")


def test_a_voila_config_file_cannot_loosen_the_dashboard(tmp_path, monkeypatch):
    """voila.json in the working directory asks for code, tracebacks, files and overrides: all refused."""
    from commerceql.dashboard import _voila_app_class, voila_arguments

    (tmp_path / "voila.json").write_text(
        json.dumps(
            {
                "VoilaConfiguration": {
                    "strip_sources": False,
                    "show_tracebacks": True,
                    "file_allowlist": [".*"],
                    "http_header_envs": ["Cookie"],
                    "allow_template_override": "YES",
                    "progressive_rendering": True,
                },
                "KernelSpecManager": {"allowed_kernelspecs": ["python3", "commerceql"]},
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "config"))
    app = _voila_app_class()()
    sigterm = signal.getsignal(signal.SIGTERM)  # Voilà's initialize installs its own handler
    try:
        app.initialize(voila_arguments(NOTEBOOK, host="127.0.0.1", port=free_port(), open_browser=False, kernel="python3"))
        settings = app.voila_configuration
        assert "voila.json" in " ".join(app.loaded_config_files), app.loaded_config_files
        assert settings.strip_sources is True and settings.show_tracebacks is False
        assert settings.progressive_rendering is False and settings.allow_template_override == "NO"
        assert settings.file_allowlist == [] and settings.http_header_envs == []
        kernels = settings.kernel_spec_manager_class(parent=app)
        assert set(kernels.find_kernel_specs()) == {"python3"}
    finally:
        signal.signal(signal.SIGTERM, sigterm)
        app.remove_private_files()


def test_loopback_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.20")


def test_voila_guard_accepts_the_installed_voila_and_refuses_one_relaying_execute_requests():
    from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

    class KernelManager:
        allowed_message_types = sorted(PAGE_MESSAGE_TYPES)

    check_voila_guards(KernelManager(), ZMQChannelsWebsocketConnection)  # what Voilà 0.5 sets up

    class Relaying(KernelManager):
        allowed_message_types = [*PAGE_MESSAGE_TYPES, "execute_request"]

    class Unfiltered(KernelManager):
        allowed_message_types: list[str] = []  # empty means "everything" to jupyter_server

    for manager in (Relaying(), Unfiltered()):
        with pytest.raises(CommerceQLError, match="more than widget messages"):
            check_voila_guards(manager, ZMQChannelsWebsocketConnection)
