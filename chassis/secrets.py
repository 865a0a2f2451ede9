"""Development secrets: generated once into var/ with owner-only permissions, reused after.

Production supplies every secret through configuration (and settings refuse placeholders);
this module only serves the embedded default, so `make run` works on a bare machine.
"""

from __future__ import annotations

import os
import pathlib
import secrets as _secrets


def load_or_create(path: pathlib.Path, *, nbytes: int = 32, prefix: str = "") -> str:
    """Read the secret at `path`, creating it (random, url-safe, 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = prefix + _secrets.token_urlsafe(nbytes)
    temporary = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    try:
        # Link, not rename: if another process created the file meanwhile, keep theirs.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text().strip()
