"""Writing files that hold secrets (tokens, private keys) readable by their owner only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_private"]


def write_private(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` as a file of mode 0600, atomically; return the path.

    The bytes go to a new temporary file in the same directory, which ``mkstemp`` creates
    with ``O_CREAT | O_EXCL`` and mode 0600 whatever the umask, and which then replaces
    ``path`` in one rename. So no reader ever sees the secret in a file others may read:
    not while it is written, and not in an older file of mode 0644 that a plain
    ``open(path, "w")`` would have truncated and kept the mode of. A reader sees the old
    content or the new, never half of it. A symbolic link at ``path`` is replaced, not
    followed.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
