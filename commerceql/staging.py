"""Writing a store folder so that nobody ever sees it half-written."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_folder(target: Path, label: str) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; on success it replaces `target` in one rename.

    On an exception the temporary folder is removed and `target` is left as it was.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-{label}-", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp creates the folder private
        old = None
        if target.exists():
            old = target.parent / f".{target.name}-old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
