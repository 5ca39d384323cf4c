"""llmtui's own directories, private modes, atomic writes, and bounded reads of files that may be hostile.

The modes rule: llmtui sets a mode only on a directory it has just created inside its own config, data
or cache dir (0700), and on a file it writes (0600). It never changes the mode of anything that already
exists: a directory the user made read-only stays read-only, and a directory the user names (`-o FILE`,
`--config FILE`) is never touched at all.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import platformdirs

from llmtui.core.errors import LlmtuiError

DIR_MODE = 0o700
FILE_MODE = 0o600
# The most llmtui reads of one file: far above any real conversation (10,000 messages with every step's
# candidates are about 50 MB), far below what would exhaust memory when parsed.
MAX_FILE_BYTES = 256 << 20


class StoreError(LlmtuiError):
    """A file or directory cannot be read or written; the message names it and says why, in one line."""


def config_dir() -> Path:
    """The settings directory: ``LLMTUI_CONFIG_DIR``, else the platform's user config dir."""
    override = os.environ.get("LLMTUI_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("llmtui"))


def data_dir() -> Path:
    """The conversations' directory: ``LLMTUI_DATA_DIR``, else the platform's user data dir."""
    override = os.environ.get("LLMTUI_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir("llmtui"))


def cache_dir() -> Path:
    """Where converted checkpoints live: ``LLMTUI_CACHE_DIR``, else the platform's user cache dir."""
    override = os.environ.get("LLMTUI_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("llmtui"))


def reason(exc: OSError) -> str:
    """An OSError's reason without Python's decoration: "Permission denied"."""
    return exc.strerror or str(exc)


def writable(directory: Path) -> bool:
    """Whether llmtui may write in ``directory``: the system allows it and the owner's write bit is set.

    The bit is checked as well because root may write anywhere: a directory its user made read-only
    (chmod 500) is read-only to llmtui whoever runs it.
    """
    try:
        return os.access(directory, os.W_OK) and bool(directory.stat().st_mode & stat.S_IWUSR)
    except OSError:
        return False


def private_dir(path: Path, root: Path | None = None) -> Path:
    """Make sure the directory ``path`` exists, creating what is missing.

    ``root`` is the one of llmtui's own directories (config, data, cache) that ``path`` lies in (``path``
    itself by default): what is created at or below it is made 0700; what is created above it gets the
    umask's mode, as any program's would. Nothing that exists is ever chmod-ed. StoreError says, in one
    line, why the directory cannot be had (a file in the way, a read-only parent, no permission).
    """
    root = root or path
    missing: list[Path] = []
    probe = path
    while True:
        try:
            st = probe.stat()
        except (FileNotFoundError, NotADirectoryError):
            missing.append(probe)
            if probe.parent == probe:
                raise StoreError(f"cannot create {path}: its file system root is missing") from None
            probe = probe.parent
            continue
        except OSError as exc:
            raise StoreError(f"cannot use the directory {probe}: {reason(exc)}") from None
        break
    if not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{probe} is not a directory" + (f", so llmtui cannot keep {path} there" if missing else ""))
    if missing and not writable(probe):
        raise StoreError(f"cannot create {missing[-1]}: {probe} is read-only")
    for directory in reversed(missing):
        own = directory == root or root in directory.parents
        try:
            directory.mkdir(mode=DIR_MODE if own else 0o777)
        except FileExistsError:
            if directory.is_dir():
                continue  # another process made it meanwhile: theirs, not to be chmod-ed
            raise StoreError(f"{directory} is not a directory, so llmtui cannot keep {path} there") from None
        except OSError as exc:
            raise StoreError(f"cannot create {directory}: {reason(exc)}") from None
        if own:
            os.chmod(directory, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file (0600) so readers see the old or the new content, never a mix: temp file, fsync, rename.

    The directory must exist and is never created or chmod-ed here: llmtui's own directories come from
    ``private_dir``, and a directory the user names is theirs. StoreError names the file and why.
    """
    if path.is_dir():
        raise StoreError(f"cannot write {path}: it is a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {reason(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        # The rename itself must reach the disk too.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise StoreError(f"cannot write {path}: {reason(exc)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_regular(path: Path, limit: int = MAX_FILE_BYTES, *, head: int | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (with ``head``, its first ``head`` bytes,
    whatever its size); StoreError for anything else.

    A FIFO, a device (a link to /dev/zero) or a file that grows past the limit would block or fill
    memory: none of them is ever read. FileNotFoundError passes through, for callers to word.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: a device is never even opened
            raise StoreError(f"{path} is not a regular file")
        # O_NONBLOCK: were it swapped for a FIFO since, opening it must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {reason(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{path} is not a regular file")
        if head is not None:
            return os.read(fd, head)
        if st.st_size > limit:
            raise StoreError(f"{path} is {st.st_size:,} bytes; llmtui reads files of at most {limit:,}")
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise StoreError(f"{path} grew past {limit:,} bytes while llmtui read it")
        return b"".join(chunks)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {reason(exc)}") from None
    finally:
        os.close(fd)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(raw: bytes, where: str) -> Any:
    """JSON from bytes that may be hostile; StoreError says in one line why they are not JSON.

    NaN and Infinity (which Python's json accepts and JSON does not) are refused, and so is nesting
    deeper than the interpreter's recursion allows (a RecursionError, not a crash).
    """
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise StoreError(f"{where} is not UTF-8 text (byte offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise StoreError(f"{where} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except RecursionError:
        raise StoreError(f"{where} is nested too deeply to be read") from None
    except ValueError as exc:
        raise StoreError(f"{where} is not valid JSON ({exc})") from None
