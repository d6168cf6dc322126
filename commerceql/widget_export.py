"""Rendering helpers for the explore widget: the chart display bundle and the standalone HTML export.

* `chart_display_bundle(chart)` turns an Altair chart into what a notebook front end can draw with
  no network access. CommerceQL's charts are Vega-Lite 6, which JupyterLab's built-in renderer
  does not accept (it renders Vega-Lite up to v5 and Vega v5), so the spec is compiled to Vega
  with vl-convert and published as `application/vnd.vega.v5+json` (drawn as SVG, no actions menu).
* `chart_image_html(spec)`: the chart as a static SVG image, the fallback a saved notebook keeps
  for readers without a kernel or widget support.
* `standalone_html(...)` writes one HTML page with the query text, the chart and the table. Vega,
  Vega-Lite and Vega-Embed are inlined from vl-convert's bundle, so the page opens from disk in a
  browser with no Jupyter and no internet connection.
* `export_target(path)`: where an export is written. A bare file name (`report.html`) goes into
  the `exports/` folder of the working directory (a notebook's kernel runs in the notebook's
  folder), which `.gitignore` ignores, so exporting never leaves stray files beside notebooks; a
  path with a folder in it (`reports/q3.html`, `./q3.html`, `/tmp/q3.html`) is used as written.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import os
from pathlib import Path
from typing import Any

VEGA_MIME = "application/vnd.vega.v5+json"
_VEGA5_SCHEMA = "https://vega.github.io/schema/vega/v5.json"


def vegalite_spec(chart: Any) -> dict[str, Any]:
    """The chart's Vega-Lite spec with every dataset inline (JSON-serializable)."""
    from commerceql.charts import chart_to_vegalite

    return chart_to_vegalite(chart)


def _vl_version() -> str | None:
    from commerceql.charts import _vl_version as charts_vl_version

    return charts_vl_version()


@functools.lru_cache(maxsize=64)
def _compiled_vega(vl_text: str, vl_version: str | None) -> str:
    """The Vega spec (JSON text) of a Vega-Lite spec (JSON text).

    Cached: every compile grows vl-convert's JavaScript heap (about 70 KB a call, for the first
    several hundred calls), and a control bar re-run or re-opened on the same view compiles the
    same spec again.
    """
    import vl_convert

    compiled = vl_convert.vegalite_to_vega(json.loads(vl_text), vl_version=vl_version)
    return compiled if isinstance(compiled, str) else json.dumps(compiled)


def vega_spec(vl_spec: dict[str, Any]) -> dict[str, Any]:
    """Compile a Vega-Lite spec to a Vega spec (offline, with vl-convert's bundled compiler)."""
    key = json.dumps(vl_spec, sort_keys=True, separators=(",", ":"), default=str)
    compiled = json.loads(_compiled_vega(key, _vl_version()))  # a fresh dict: callers may change it
    # JupyterLab's renderer runs Vega 5; the compiled spec only uses what Vega 5 understands, and
    # the v5 schema URL spares the "spec made for a newer Vega" warning. The URL is never fetched.
    compiled["$schema"] = _VEGA5_SCHEMA
    return compiled


def chart_display_bundle(chart: Any, vl_spec: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, metadata) of a display_data message that JupyterLab draws offline as an SVG chart."""
    spec = vl_spec if vl_spec is not None else vegalite_spec(chart)
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    data = {
        VEGA_MIME: vega_spec(spec),
        "text/plain": f"<CommerceQL chart: {title}>" if title else "<CommerceQL chart>",
    }
    metadata = {VEGA_MIME: {"embed_options": {"renderer": "svg", "actions": False}}}
    return data, metadata


@functools.lru_cache(maxsize=32)
def _svg_text(vl_text: str, vl_version: str | None) -> str:
    import vl_convert

    return vl_convert.vegalite_to_svg(json.loads(vl_text), vl_version=vl_version)


def chart_svg(vl_spec: dict[str, Any]) -> str:
    """The chart drawn as SVG text, offline (vl-convert); cached per spec like `vega_spec`."""
    key = json.dumps(vl_spec, sort_keys=True, separators=(",", ":"), default=str)
    return _svg_text(key, _vl_version())


def chart_image_html(vl_spec: dict[str, Any]) -> str:
    """The chart as an <img> with the SVG inline (a data: URL).

    For readers that draw only HTML and images (nbconvert, GitHub, a notebook opened without its
    kernel): an <img> keeps the chart's own ids and styles out of the page, and sanitizers that
    drop inline <svg> keep images.
    """
    import base64

    data = base64.b64encode(chart_svg(vl_spec).encode("utf-8")).decode("ascii")
    title = vl_spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    alt = html.escape(str(title) if title else "chart", quote=True)
    return f'<div class="cql-chart-image"><img alt="{alt}" style="max-width:100%" src="data:image/svg+xml;base64,{data}"></div>'


@functools.lru_cache(maxsize=4)
def javascript_bundle(vl_version: str | None = None) -> str:
    """Vega + Vega-Lite + Vega-Embed as one script (sets window.vega, window.vegaLite, window.vegaEmbed).

    Bundling takes a couple of seconds the first time, so the result is cached per process.
    """
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=vl_version) if vl_version else vl_convert.javascript_bundle()
    # Never let the library text close its own <script> element early.
    return bundle.replace("</script", "<\\/script")


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script type="application/json"> element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


_PAGE_STYLE = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;margin:24px;color:#202223}
h1{font-size:20px;margin:0 0 4px}
.cql-meta{color:#6d7175;font-size:12px;margin-bottom:12px}
pre.cql-query{background:#f6f6f7;border:1px solid #e1e3e5;border-radius:6px;padding:10px 12px;font-size:13px;overflow:auto}
#cql-chart{margin:12px 0}
.cql-chart-error{color:#b00020}
"""


def standalone_html(
    *,
    title: str,
    query_text: str,
    table_html: str,
    vl_spec: dict[str, Any] | None,
    subtitle: str = "",
) -> str:
    """A self-contained page: query text, chart (when there is one) and table; no network needed."""
    generated = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    meta = html.escape(f"{subtitle} · exported {generated}" if subtitle else f"exported {generated}")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_PAGE_STYLE}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<div class="cql-meta">{meta}</div>',
        f'<pre class="cql-query">{html.escape(query_text)}</pre>',
    ]
    if vl_spec is not None:
        parts += [
            '<div id="cql-chart"></div>',
            f'<script type="application/json" id="cql-vegalite-spec">{_script_json(vl_spec)}</script>',
            f"<script>{javascript_bundle(_vl_version())}</script>",
            "<script>(function(){"
            'var spec=JSON.parse(document.getElementById("cql-vegalite-spec").textContent);'
            'vegaEmbed("#cql-chart",spec,{renderer:"svg",actions:false}).catch(function(err){'
            'var box=document.getElementById("cql-chart");box.className="cql-chart-error";'
            'box.textContent="The chart could not be drawn: "+err;});'
            "})();</script>",
        ]
    parts += [f'<div class="cql-table">{table_html}</div>', "</body></html>"]
    return "\n".join(parts)


#: The folder (in the working directory) that receives exports named by a bare file name.
EXPORTS_FOLDER = "exports"


def _has_folder(text: str) -> bool:
    separators = {"/", os.sep, os.altsep} - {None}
    return text.startswith("~") or any(separator in text for separator in separators)


def export_target(path: str | Path, base: str | Path | None = None) -> Path:
    """The absolute file an export of `path` writes (`.html` added when the name has no such suffix).

    A bare file name goes into `<base>/exports/`; a path with a folder in it (even `./name.html`)
    is taken as written, relative to `base`. `base` defaults to the working directory.
    """
    text = str(path).strip()
    if not text:
        raise ValueError("an export needs a file name")
    root = Path(base) if base is not None else Path.cwd()
    target = Path(text).expanduser() if _has_folder(text) else Path(EXPORTS_FOLDER) / text
    if not target.is_absolute():
        target = root / target
    if target.suffix.lower() not in (".html", ".htm"):
        target = target.with_name(target.name + ".html")
    return Path(os.path.abspath(target))


def write_standalone_html(path: str | Path, **page: Any) -> Path:
    """Write `standalone_html(**page)` to `path` (parents created) and return the absolute path."""
    target = Path(path).expanduser()
    if target.suffix.lower() not in (".html", ".htm"):
        target = target.with_suffix(".html")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(standalone_html(**page), encoding="utf-8")
    return target.resolve()
