"""Install the CommerceQL kernel spec so JupyterLab lists "CommerceQL" in its launcher.

An install into an environment (`--sys-prefix`, `--prefix`) also writes CommerceQL's JupyterLab
settings defaults there (`install_lab_settings`): JupyterLab then saves widget state with the
notebook, so a notebook reopened without a running kernel shows its control bars' last view
instead of "Error displaying widget: model not found".
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

RESOURCES = Path(__file__).parent / "resources"
KERNEL_NAME = "commerceql"


def kernel_spec() -> dict[str, object]:
    return {
        "argv": [sys.executable, "-m", "commerceql_kernel", "-f", "{connection_file}"],
        "display_name": "CommerceQL",
        "language": "commerceql",
        "interrupt_mode": "signal",
        "metadata": {"debugger": False},
    }


#: JupyterLab settings defaults CommerceQL ships (plugin id -> settings). `saveState`: store the
#: widgets' state in the notebook when it is saved (off by default in JupyterLab).
LAB_SETTINGS: dict[str, dict[str, object]] = {
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
}
#: Our file among JupyterLab's `overrides.d/*.json` (a user's own `overrides.json` stays untouched
#: and, read after these, wins).
LAB_OVERRIDES_FILE = "commerceql.json"


def lab_settings_dir(prefix: str | os.PathLike[str] | None = None) -> Path:
    """JupyterLab's application settings folder of an environment (`<prefix>/share/jupyter/lab/settings`).

    Without `prefix`, the one `jupyter lab` of this environment reads (its app directory, which
    honours `$JUPYTERLAB_DIR`).
    """
    if prefix is None:
        try:
            from jupyterlab.commands import get_app_dir
        except ImportError:  # no JupyterLab here: where it would look once installed
            app_dir = os.environ.get("JUPYTERLAB_DIR") or os.path.join(sys.prefix, "share", "jupyter", "lab")
        else:
            app_dir = get_app_dir()
        return Path(app_dir) / "settings"
    return Path(prefix) / "share" / "jupyter" / "lab" / "settings"


def install_lab_settings(prefix: str | os.PathLike[str] | None = None) -> Path:
    """Write `LAB_SETTINGS` as `<settings dir>/overrides.d/commerceql.json`; returns the file."""
    target = lab_settings_dir(prefix) / "overrides.d" / LAB_OVERRIDES_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(LAB_SETTINGS, indent=2) + "\n", encoding="utf-8")
    return target


def install_kernel_spec(
    *, user: bool = False, sys_prefix: bool = False, prefix: str | None = None, lab_settings: bool = True
) -> str:
    """Write the spec (and logos) and register it with Jupyter; returns the installed directory.

    Into an environment (`sys_prefix`, `prefix`) it also writes the JupyterLab settings defaults
    (`install_lab_settings`) unless `lab_settings=False`. A `user` install does not: JupyterLab
    reads such defaults only from an environment, and a user's own settings are theirs.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as staging:
        folder = Path(staging) / KERNEL_NAME
        folder.mkdir()
        (folder / "kernel.json").write_text(json.dumps(kernel_spec(), indent=2), encoding="utf-8")
        for resource in RESOURCES.glob("*"):
            if resource.is_file():
                shutil.copy(resource, folder / resource.name)
        if not user and not sys_prefix and prefix is None:
            sys_prefix = True
        installed = KernelSpecManager().install_kernel_spec(
            str(folder),
            KERNEL_NAME,
            user=user,
            prefix=sys.prefix if sys_prefix else prefix,
        )
    if lab_settings and not user:
        install_lab_settings(None if sys_prefix else prefix)
    return installed
