"""Atomic file writes shared by every stage: write a temporary file beside the target, then rename it over
the target, so an interrupted run never leaves a half-written manifest, item log, audio file or checkpoint.

The temporary file gets the permissions a plain ``open(path, "w")`` would give the target (its current mode
when it exists, else 0o666 less the umask): ``mkstemp``'s private 0o600 would otherwise survive the rename and
hide the dataset from a group, a container or a second user."""
from __future__ import annotations

import os
import re
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TMP_SUFFIX = ".part"


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (setting and restoring it would
    briefly affect files other threads create)."""
    try:
        with open("/proc/self/status") as f:
            m = re.search(r"^Umask:\s*([0-7]+)", f.read(), re.M)
        if m:
            return int(m.group(1), 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def open_mode(path: str | os.PathLike) -> int:
    """The permission bits ``open(path, "w")`` leaves ``path`` with."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def make_temp(folder: str | os.PathLike, prefix: str, suffix: str, target: str | os.PathLike | None = None
              ) -> tuple[int, str]:
    """``tempfile.mkstemp`` in ``folder`` with the mode a plain open of ``target`` would give (of a new file in
    ``folder`` when no target is known yet): (open descriptor, path)."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    try:
        os.fchmod(fd, open_mode(target) if target is not None else 0o666 & ~current_umask())
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    return fd, name


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = TMP_SUFFIX, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to ``path``, on error remove it.
    With ``fsync`` the data reaches the disk before the rename (for logs a kill -9 must not tear)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = make_temp(path.parent, f".{path.name}.", suffix, target=path)
    os.close(fd)
    try:
        yield Path(tmp)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutsideFolderError(ValueError):
    """A path that resolves outside the folder it must stay in (a symbolic link planted in it, a '..')."""


def inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path`` (relative to ``root``, or absolute) with every symbolic link resolved, refused unless it lies
    under ``root`` (resolved too): a link planted in an output folder never carries a write out of it."""
    base = Path(root).resolve()
    target = (base / path).resolve()
    if not target.is_relative_to(base):
        raise OutsideFolderError(f"refusing {Path(root) / path}: it resolves to {target}, outside {base} (a "
                                 f"symbolic link planted in the folder, or '..' in the name?)")
    return target


def write_text_inside(root: str | os.PathLike, path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to root/path atomically, refusing targets outside ``root``."""
    target = inside(root, path)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def append_fd_inside(root: str | os.PathLike, path: str | os.PathLike) -> int:
    """root/path opened for appending (a descriptor, for writers that need os.write and ftruncate), refusing
    targets outside ``root`` and never following a link at the last component (O_NOFOLLOW), even one planted
    after the check."""
    target = inside(root, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)


def append_inside(root: str | os.PathLike, path: str | os.PathLike):
    """root/path opened for appending text (an append-only log), as ``append_fd_inside``."""
    return os.fdopen(append_fd_inside(root, path), "a", encoding="utf-8")
