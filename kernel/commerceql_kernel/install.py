"""Install the CommerceQL kernel spec so JupyterLab lists "CommerceQL" in its launcher."""

from __future__ import annotations

import json
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


def install_kernel_spec(*, user: bool = False, sys_prefix: bool = False, prefix: str | None = None) -> str:
    """Write the spec (and logos) and register it with Jupyter; returns the installed directory."""
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
        return KernelSpecManager().install_kernel_spec(
            str(folder),
            KERNEL_NAME,
            user=user,
            prefix=sys.prefix if sys_prefix else prefix,
        )
