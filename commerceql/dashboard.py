"""`commerceql serve NOTEBOOK.ipynb`: a notebook as a dashboard for staff who never open JupyterLab.

The notebook is served by Voilà, in this process: each visitor's page gets its own kernel (the
kernel named in the notebook's metadata, no other), Voilà runs the notebook in it once, top to
bottom, and the page shows the outputs only (the code is stripped from the HTML). After that the
page and its kernel exchange widget messages only, so the control bars stay live.

What keeps a page from running code of its choosing (see docs/dashboards.md, *Security*):

* Voilà's kernel manager is created with `allowed_message_types` = comm_open / comm_msg /
  comm_close / comm_info_request / kernel_info_request / shutdown_request, and jupyter_server's
  kernel websocket drops every other message from the page (an `execute_request` included) before
  it reaches the kernel. `check_voila_guards` checks both on the server about to start and
  refuses to serve otherwise.
* Voilà's other execution path (progressive rendering's execute websocket) and the kernel pool
  (preheating) are switched off; serving one file means there is no file tree, no contents API
  and no "new kernel" handler; no static files are served next to the notebook.
* The page may only load from and connect to this server (a Content-Security-Policy header), and
  on loopback the server refuses requests whose Host is not a loopback name (DNS rebinding).
* Every visitor needs the token (Jupyter's own: `JUPYTER_TOKEN`, `JUPYTER_TOKEN_FILE`, or a random
  one printed in the URL) or the password Jupyter's `PasswordIdentityProvider` is configured with;
  a server that would have neither is refused.
* The store the notebook opens is read-only to CommerceQL (docs/security.md), and `explore()` below
  is the control bar without its *Export HTML* button, which would let a page write files on the
  server.

The kernels inherit ``COMMERCEQL_DASHBOARD=1`` from this process, so notebook code can tell that
it runs behind `commerceql serve`.
"""

from __future__ import annotations

import argparse
import errno
import html
import ipaddress
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from commerceql.errors import CommerceQLError

if TYPE_CHECKING:
    from commerceql import ast
    from commerceql.store import Store
    from commerceql.widgets import ExploreWidget

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "DEFAULT_PORT",
    "PAGE_MESSAGE_TYPES",
    "check_notebook",
    "check_voila_guards",
    "explore",
    "is_loopback",
    "notebook_kernel",
    "run_serve",
    "voila_arguments",
    "without_export",
]

DEFAULT_PORT = 8866
#: What a page may send its kernel: widget (comm) traffic, kernel info and shutting its own kernel
#: down. Everything else, `execute_request` first of all, must be dropped by the server.
PAGE_MESSAGE_TYPES = frozenset(
    {"comm_open", "comm_close", "comm_msg", "comm_info_request", "kernel_info_request", "shutdown_request"}
)
#: The page may load and connect to this server only. Voilà's lab template links Font Awesome from
#: a CDN and Mermaid would be imported from one; the browser refuses both (the icons come from the
#: local JupyterLab styles or are missing), so nothing a page shows can call another host, and no
#: output can send the store's data elsewhere. 'unsafe-eval' is Vega's (it compiles expressions with
#: `new Function`); inline scripts and styles are how Voilà and the widgets render.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)


# ---------------------------------------------------------------------------------------------
# Checking what is asked for
# ---------------------------------------------------------------------------------------------


def check_notebook(path: str | Path) -> Path:
    """`path` as an absolute path to an existing .ipynb file, or a CommerceQLError saying why not."""
    notebook = Path(path).expanduser()
    example = "commerceql serve notebooks/dashboard_b2b.ipynb"
    if notebook.suffix.lower() != ".ipynb":
        raise CommerceQLError(
            f"`{path}` is not a notebook: commerceql serve takes one .ipynb file",
            hint=f"save the dashboard as a Jupyter notebook (.ipynb) and pass it, e.g. {example}",
        )
    if not notebook.exists():
        raise CommerceQLError(f"no notebook at `{path}`", hint=f"check the path, e.g. {example}")
    if not notebook.is_file():
        # Voilà would serve a directory as a file tree; a dashboard is one notebook.
        raise CommerceQLError(f"`{path}` is not a file", hint=f"pass one notebook file, e.g. {example}")
    return notebook.resolve()


def notebook_kernel(notebook: Path) -> str:
    """The kernel the notebook names in its metadata; it must be installed (the page gets no other)."""
    try:
        content = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CommerceQLError(
            f"`{notebook.name}` cannot be read as a notebook: {error}",
            hint="open it in JupyterLab and save it again, or pass another .ipynb file",
        ) from None
    metadata = content.get("metadata") if isinstance(content, dict) else None
    spec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    name = spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not name:
        raise CommerceQLError(
            f"`{notebook.name}` does not say which kernel runs it (no metadata.kernelspec.name)",
            hint="open it in JupyterLab, pick a kernel (Python 3 or CommerceQL) and save it",
        )
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        install = "commerceql kernel install --sys-prefix" if name == "commerceql" else "python -m ipykernel install --sys-prefix"
        raise CommerceQLError(
            f"the notebook's kernel `{name}` is not installed",
            hint=f"install it ({install}) or switch the notebook to an installed kernel",
        ) from None
    return name


def is_loopback(host: str) -> bool:
    """True when `host` only reaches this machine (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        raise CommerceQLError(
            f"cannot resolve the host `{host}`", hint="pass an address such as 127.0.0.1 (the default) or 0.0.0.0"
        ) from None
    return all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses)


def _check_port(host: str, port: int) -> None:
    """A CommerceQLError now, rather than Voilà's log line later, when the port cannot be used."""
    if not 1 <= port <= 65535:
        raise CommerceQLError(f"port {port} is not a TCP port", hint="pass --port with a number from 1024 to 65535, e.g. --port 8866")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise CommerceQLError(f"cannot resolve the host `{host}`", hint="pass an address such as 127.0.0.1") from None
    family, kind, protocol, _, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        # Tornado listens with SO_REUSEADDR; probing the same way does not mistake a port with
        # connections in TIME_WAIT for a port in use.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CommerceQLError(
                    f"port {port} on {host} is already in use", hint=f"stop what uses it or pass another port, e.g. --port {port + 1}"
                ) from None
            if error.errno == errno.EADDRNOTAVAIL:
                raise CommerceQLError(
                    f"{host} is not an address of this machine", hint="pass 127.0.0.1 (the default) or 0.0.0.0"
                ) from None
            raise CommerceQLError(f"cannot listen on {host}:{port}: {error.strerror}", hint="pass another --port") from None


def check_voila_guards(kernel_manager: Any, websocket_connection_class: type) -> None:
    """Refuse to serve when the server would relay more than widget traffic from a page to a kernel.

    The guard is Voilà's (the `allowed_message_types` it gives its kernel manager) together with
    jupyter_server's (whose kernel websocket drops every other message type). Both are checked on
    the objects about to serve, so a Voilà or jupyter_server upgrade that changed either stops
    `commerceql serve` instead of silently exposing the kernels.
    """
    import inspect

    from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

    allowed = set(getattr(kernel_manager, "allowed_message_types", None) or ())
    relays_through_filter = issubclass(websocket_connection_class, ZMQChannelsWebsocketConnection) and (
        "allowed_message_types" in inspect.getsource(websocket_connection_class.handle_incoming_message)
    )
    if not allowed or not allowed <= PAGE_MESSAGE_TYPES or not relays_through_filter:
        raise CommerceQLError(
            "the installed Voilà would let a page send its kernel more than widget messages "
            f"(allowed: {', '.join(sorted(allowed)) or 'everything'})",
            hint="install the Voilà version CommerceQL is tested with (pip install 'voila==0.5.13')",
        )


# ---------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------


def voila_arguments(notebook: Path, *, host: str, port: int, open_browser: bool, kernel: str) -> list[str]:
    """Voilà's command line for serving `notebook` as a dashboard.

    Passed as command-line options on purpose: traitlets gives them precedence over any
    voila.json / voila.py config file, so a config file cannot turn tracebacks or the code back on.
    A password (`PasswordIdentityProvider.hashed_password`) may still come from such a file. The
    lists a command line cannot empty are set by `DashboardServer.initialize` (`LOCKED_LISTS`).
    """
    return [
        str(notebook),
        f"--Voila.ip={host}",
        f"--Voila.port={port}",
        "--Voila.port_retries=0",  # the port asked for, or an error; not a neighbour picked silently
        f"--Voila.open_browser={open_browser}",
        "--token",  # Jupyter's default token behaviour (Voilà alone serves without one)
        "--VoilaConfiguration.show_tracebacks=False",
        "--VoilaConfiguration.strip_sources=True",
        "--VoilaConfiguration.preheat_kernel=False",
        "--VoilaConfiguration.progressive_rendering=False",  # its execute websocket stays unregistered
        "--VoilaConfiguration.allow_template_override=NO",
        "--VoilaConfiguration.allow_theme_override=NO",
        f"--KernelSpecManager.allowed_kernelspecs={kernel}",
    ]


#: VoilaConfiguration lists set after the configuration is read: no file next to the notebook is
#: served (Voilà's default serves images from its folder), no request header reaches the kernel.
LOCKED_LISTS: dict[str, tuple[str, ...]] = {"file_allowlist": (), "http_header_envs": ()}

#: Voilà's lab template with the same page, minus its <link>s to stylesheets on another host (Font
#: Awesome from a CDN): the page then asks this server only (the policy above would refuse them
#: anyway, but the page should not even try). Written to a private folder put first in the
#: template search path, for as long as the server runs.
_LOCAL_ONLY_TEMPLATE = """{%- extends 'voila/templates/lab/index.html.j2' -%}
{%- block notebook_css -%}
{%- for line in super().split('\\n') if not ('<link' in line and '://' in line) %}
{{ line }}
{%- endfor %}
{%- endblock notebook_css -%}
"""


def _voila_app_class() -> type:
    from voila.app import Voila

    class DashboardServer(Voila):  # type: ignore[misc, valid-type]
        """Voilà that checks its guards, refuses to run without authentication, keeps the page on
        this server (headers, template), opens the browser with the token and says where it is."""

        local_template_dir: str | None = None
        browser_redirect_file: str | None = None

        def initialize(self, argv: list[str] | None = None) -> None:
            super().initialize(argv)
            # After every config file was read, so none can widen them.
            for name, value in LOCKED_LISTS.items():
                setattr(self.voila_configuration, name, list(value))

        def setup_template_dirs(self) -> None:
            super().setup_template_dirs()
            self.local_template_dir = tempfile.mkdtemp(prefix="commerceql-dashboard-")
            Path(self.local_template_dir, "index.html.j2").write_text(_LOCAL_ONLY_TEMPLATE, encoding="utf-8")
            self.template_paths = [self.local_template_dir, *self.template_paths]

        def remove_private_files(self) -> None:
            """Remove the private files this server wrote (its template, the browser's redirect)."""
            if self.local_template_dir:
                shutil.rmtree(self.local_template_dir, ignore_errors=True)
                self.local_template_dir = None
            if self.browser_redirect_file:
                Path(self.browser_redirect_file).unlink(missing_ok=True)
                self.browser_redirect_file = None

        def stop(self) -> None:
            try:
                super().stop()
            finally:
                self.remove_private_files()

        def launch_browser(self) -> None:
            token = self.identity_provider.token
            if not token:  # a password: the login page is the place to start
                super().launch_browser()
                return
            # Voilà would open its address without the token, i.e. the login page. Like Jupyter,
            # open it with the token, through a file only this user can read (mkstemp: mode 0600),
            # so the token is not on a browser's command line.
            try:
                browser = webbrowser.get(self.browser or None)
            except webbrowser.Error as error:
                self.log.warning("No web browser found: %s.", error)
                return
            url = html.escape(f"{self.connection_url}?token={token}")
            descriptor, path = tempfile.mkstemp(prefix="commerceql-dashboard-", suffix=".html")
            with open(descriptor, "w", encoding="utf-8") as redirect:
                redirect.write(
                    f'<!doctype html><meta http-equiv="refresh" content="0;url={url}">'
                    f'<p><a href="{url}">Open the CommerceQL dashboard</a></p>'
                )
            self.browser_redirect_file = path
            threading.Thread(
                target=browser.open, args=(Path(path).as_uri(),), kwargs={"new": self.webbrowser_open_new}, daemon=True
            ).start()

        def init_settings(self) -> dict[str, Any]:
            settings: dict[str, Any] = super().init_settings()
            check_voila_guards(self.kernel_manager, settings.get("kernel_websocket_connection_class", type(None)))
            if not self.identity_provider.auth_enabled:
                shutil.rmtree(self.connection_dir, ignore_errors=True)
                raise CommerceQLError(
                    "refusing to serve a dashboard without a token or a password",
                    hint="unset an empty JUPYTER_TOKEN / Voila.token, or configure PasswordIdentityProvider.hashed_password",
                )
            settings["headers"] = {
                **settings.get("headers", {}),
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "Referrer-Policy": "no-referrer",  # the token in the URL is not passed on
            }
            # Voilà accepts any Host header; on loopback, jupyter_server's host check then refuses
            # names other than localhost / loopback addresses (DNS rebinding).
            settings["allow_remote_access"] = not is_loopback(self.ip)
            return settings

        def start(self) -> None:
            import tornado.ioloop

            # Runs once the loop is running, i.e. after the port is bound (listen() exits otherwise).
            tornado.ioloop.IOLoop.current().add_callback(self._announce)
            super().start()

        def _announce(self) -> None:
            # Like Jupyter: the URL carries a generated token; a chosen one (JUPYTER_TOKEN) shows as "...".
            print(f"CommerceQL dashboard: {self.display_url}", flush=True)
            if not self.identity_provider.token:
                print("  (log in with the password configured for Jupyter)", flush=True)
            print("  (Ctrl-C stops the server and its kernels)", flush=True)

    return DashboardServer


def run_serve(args: argparse.Namespace) -> int:
    """`commerceql serve NOTEBOOK.ipynb [--port 8866] [--host 127.0.0.1] [--no-browser]`."""
    notebook = check_notebook(args.notebook)
    kernel = notebook_kernel(notebook)
    host = str(args.host or "127.0.0.1")
    port = int(args.port if args.port is not None else DEFAULT_PORT)
    if not is_loopback(host):
        print(
            f"warning: serving on {host}, not only this machine: anyone who can reach port {port} and has "
            "the token (or password) sees the store's data; keep the default 127.0.0.1 unless that is intended",
            file=sys.stderr,
        )
    _check_port(host, port)
    from commerceql.widgets import DASHBOARD_ENV  # every control bar in the served kernels drops its export

    os.environ[DASHBOARD_ENV] = "1"
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started in the background of a script, SIGINT arrives ignored; Ctrl-C must still stop the server.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    app = _voila_app_class()()
    try:
        app.initialize(voila_arguments(notebook, host=host, port=port, open_browser=not args.no_browser, kernel=kernel))
        app.start()  # returns when Ctrl-C / SIGTERM stops the loop, after shutting the kernels down
    except SystemExit as stop:  # Voilà's own exit (e.g. the port taken between the check and now)
        return stop.code if isinstance(stop.code, int) else 1
    except KeyboardInterrupt:
        pass
    finally:
        app.remove_private_files()
    print("dashboard stopped", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------
# In the dashboard's notebook
# ---------------------------------------------------------------------------------------------


def without_export(widget: ExploreWidget) -> ExploreWidget:
    """`widget` without its *Export to* box and *Export HTML* button (a page must not write files).

    Every bar in a kernel `commerceql serve` started has lost them already (DASHBOARD_ENV); this
    also covers a notebook run some other way.
    """
    if not widget.export_removed:
        widget.remove_export()
    return widget


def explore(store: Store, query: str | ast.Query) -> ExploreWidget:
    """The control bar over `query` for a dashboard: `store.explore(query)` without the export."""
    return without_export(store.explore(query))
