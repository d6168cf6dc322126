"""The CommerceQL kernel: an ipykernel wrapper kernel around `commerceql_kernel.session`.

Every query of a cell produces a `display_data` with the formatted grid (text/html + text/plain)
and, when the query has VISUALIZE, a second `display_data` with the Vega-Lite chart. Errors are
`error` outputs whose traceback is the rendered CommerceQL message (line, caret, hint), never a
Python traceback; the kernel survives any cell.
"""

from __future__ import annotations

import os
from typing import Any

from ipykernel.kernelbase import Kernel

import commerceql
from commerceql.completion import is_complete
from commerceql_kernel import __version__
from commerceql_kernel.session import CellError, KernelSession, Output

#: The environment variable naming the store to open instead of the bundled sample store.
STORE_ENVIRONMENT_VARIABLE = "COMMERCEQL_STORE"


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
