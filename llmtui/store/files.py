"""Private directories and atomic writes: the user's data is never half-written or world-readable."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs

DIR_MODE = 0o700
FILE_MODE = 0o600


def config_dir() -> Path:
    """The settings directory: ``LLMTUI_CONFIG_DIR``, else the platform's user config dir."""
    override = os.environ.get("LLMTUI_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("llmtui"))


def data_dir() -> Path:
    """The conversations' directory: ``LLMTUI_DATA_DIR``, else the platform's user data dir."""
    override = os.environ.get("LLMTUI_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir("llmtui"))


def private_dir(path: Path) -> Path:
    """Create a directory (and parents) readable by its owner only; tighten it if it exists."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    # mkdir(parents=True) would give the parents the default mode; every level it creates is private.
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE, exist_ok=True)
        directory.chmod(DIR_MODE)  # mkdir's mode is masked by the umask
    if path.stat().st_mode & 0o777 != DIR_MODE:
        path.chmod(DIR_MODE)
    return path


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file so readers see the old or the new content, never a mix: temp file, fsync, rename."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself must reach the disk too.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
