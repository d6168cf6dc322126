"""The CommerceQL kernel: an ipykernel wrapper kernel around `commerceql_kernel.session`.

Every query of a cell produces a `display_data` with the formatted grid (text/html + text/plain)
and, when the query has VISUALIZE, a second `display_data` with the Vega-Lite chart. Errors are
`error` outputs whose traceback is the rendered CommerceQL message (line, caret, hint), never a
Python traceback; the kernel survives any cell.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ipykernel.kernelbase import Kernel

import commerceql
from commerceql.completion import is_complete
from commerceql_kernel import __version__
from commerceql_kernel.session import CellError, KernelSession, Output

#: The environment variable naming the store to open instead of the bundled sample store.
STORE_ENVIRONMENT_VARIABLE = "COMMERCEQL_STORE"
#: Set to 0 to start the kernel without warming the query and charting stack in the background.
WARM_UP_ENVIRONMENT_VARIABLE = "COMMERCEQL_KERNEL_WARM_UP"
# A tiny chart: drawing it once starts vl-convert's JavaScript engine (~2 s, once per process).
_WARM_UP_CHART = {
    "data": {"values": [{"x": 1, "y": 1}]},
    "mark": "bar",
    "encoding": {"x": {"field": "x", "type": "ordinal"}, "y": {"field": "y", "type": "quantitative"}},
}


def warm_up() -> None:
    """Load what the first query and its chart need, so the first cell does not wait for it.

    Imports the engine, the pipeline, the display, the control bar (ipywidgets) and vl-convert,
    builds the built-in model and the parser, and draws a tiny chart (the explore widget's chart
    and its saved-notebook image go through vl-convert, whose engine starts on first use). Runs
    in a background thread right after start-up: imports are safe there (the import lock), the
    parser and model caches are built or rebuilt alike, and the store is never touched (it opens
    on the first query, in the kernel's own thread). Any failure is ignored: the first cell then
    simply does the work itself.
    """
    try:
        import commerceql.store  # noqa: F401  (DuckDB, Polars, the compiler and resolver)
        from commerceql import display, widget_export, widgets  # noqa: F401
        from commerceql.model.semantic import builtin_model
        from commerceql.parser import get_parser

        get_parser()
        builtin_model()
        spec = {"$schema": _schema_url(), **_WARM_UP_CHART}
        widget_export.vega_spec(spec)
        widget_export.chart_svg(spec)
    except Exception:  # noqa: BLE001 - a warm-up only
        pass


def _schema_url() -> str:
    from commerceql.charts import VEGA_LITE_SCHEMA_URL

    return VEGA_LITE_SCHEMA_URL


class CommerceQLKernel(Kernel):
    implementation = "commerceql"
    implementation_version = __version__
    language = "commerceql"
    language_version = commerceql.__version__
    language_info = {
        "name": "commerceql",
        "version": commerceql.__version__,
        "mimetype": "text/x-commerceql",
        "file_extension": ".cql",
        # No CommerceQL lexer ships with Pygments or CodeMirror; SQL highlighting fits the
        # keyword/identifier/'string'/-- comment shape of the language well.
        "pygments_lexer": "sql",
        "codemirror_mode": "sql",
        "nbconvert_exporter": "script",
    }
    banner = (
        f"CommerceQL {commerceql.__version__} — a ShopifyQL-like query language over DuckDB.\n"
        "Try: FROM sales SHOW net_sales GROUP BY month DURING last_year VISUALIZE net_sales\n"
        "%help lists the magics; Tab completes, Shift-Tab explains a metric or dimension."
    )
    help_links: list[dict[str, str]] = []  # docs/kernel.md ships with the source, not at a public URL

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cql = KernelSession(store_path=os.environ.get(STORE_ENVIRONMENT_VARIABLE) or None)
        self.cql.widgets_available = self._enable_comms()
        self.warm_up_thread: threading.Thread | None = None
        if os.environ.get(WARM_UP_ENVIRONMENT_VARIABLE, "1").strip() != "0":
            self.warm_up_thread = threading.Thread(target=warm_up, name="commerceql-warm-up", daemon=True)
            self.warm_up_thread.start()

    def _enable_comms(self) -> bool:
        """Handle comm messages like IPython's kernel does, so ipywidgets (the control bar) work."""
        try:
            import comm
            from ipykernel import ipkernel  # noqa: F401  (installs ipykernel's comm factory)
        except ImportError:
            return False
        self.comm_manager = comm.get_comm_manager()
        for message_type in ("comm_open", "comm_msg", "comm_close"):
            self.shell_handlers[message_type] = getattr(self.comm_manager, message_type)
        return True

    # -- outputs -------------------------------------------------------------------------------
    def _emit(self, output: Output) -> None:
        if output.kind in ("display", "update"):
            content: dict[str, Any] = {"data": output.data, "metadata": output.metadata}
            if output.display_id is not None:
                content["transient"] = {"display_id": output.display_id}
            message_type = "display_data" if output.kind == "display" else "update_display_data"
            self.send_response(self.iopub_socket, message_type, content)
        else:
            self.send_response(self.iopub_socket, "stream", {"name": output.name, "text": output.text})

    # -- execute -------------------------------------------------------------------------------
    async def do_execute(  # type: ignore[override]
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool = False,
        *,
        cell_id: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        emit = (lambda output: None) if silent else self._emit
        try:
            try:
                # cell_id: JupyterLab's cellId (ipykernel passes it), so a re-run closes old bars.
                self.cql.run_cell(code, emit, cell_id=cell_id if isinstance(cell_id, str) else None)
            except KeyboardInterrupt:
                raise CellError.interrupted() from None
        except CellError as error:
            content = {"ename": error.ename, "evalue": error.evalue, "traceback": error.traceback}
            if not silent:
                self.send_response(self.iopub_socket, "error", content)
            return {"status": "error", "execution_count": self.execution_count, **content}
        except BaseException as error:  # noqa: BLE001 - nothing may escape into ipykernel
            if isinstance(error, SystemExit | GeneratorExit):
                raise
            cell_error = CellError.internal(error)
            self.log.exception("CommerceQL kernel internal error")
            content = {"ename": cell_error.ename, "evalue": cell_error.evalue, "traceback": cell_error.traceback}
            if not silent:
                self.send_response(self.iopub_socket, "error", content)
            return {"status": "error", "execution_count": self.execution_count, **content}
        return {"status": "ok", "execution_count": self.execution_count, "payload": [], "user_expressions": {}}

    # -- editor support ----------------------------------------------------------------------
    async def do_complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]:  # type: ignore[override]
        cursor = len(code) if cursor_pos is None else cursor_pos
        try:
            return self.cql.complete(code, cursor).to_reply()
        except Exception:
            self.log.exception("completion failed")
            return {"status": "ok", "matches": [], "cursor_start": cursor, "cursor_end": cursor, "metadata": {}}

    async def do_inspect(  # type: ignore[override]
        self, code: str, cursor_pos: int | None, detail_level: int = 0, omit_sections: Any = ()
    ) -> dict[str, Any]:
        cursor = len(code) if cursor_pos is None else cursor_pos
        try:
            data = self.cql.inspect(code, cursor)
        except Exception:
            self.log.exception("inspection failed")
            data = None
        return {"status": "ok", "found": bool(data), "data": data or {}, "metadata": {}}

    async def do_is_complete(self, code: str) -> dict[str, Any]:  # type: ignore[override]
        try:
            status, indent = is_complete(code)
        except Exception:
            self.log.exception("is_complete failed")
            status, indent = "unknown", ""
        reply: dict[str, Any] = {"status": status}
        if status == "incomplete":
            reply["indent"] = indent
        return reply

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:  # type: ignore[override]
        live = self.cql._live
        if live is not None:
            live.close_all()
        store = self.cql._store
        if store is not None:
            try:
                store.close()
            except Exception:
                pass
        return {"status": "ok", "restart": restart}
