"""Safe, streaming, resumable 7z extraction (py7zr) of an archive into one folder.

- Every entry is checked before anything is written: a name that is absolute, has a drive, climbs out (``..``),
  holds a NUL or a backslash, a symlink or junction, or anything but a regular file or folder is refused and
  reported (``ExtractReport.refused``), never written; the other entries are extracted.
- Entries stream to disk (py7zr's writer factory: no entry is held in memory) into ``<dest>.partial/`` as
  ``<name>.part``; an entry takes its name only once its size and CRC32 match the archive's. When every entry
  is in, the folder is renamed to ``dest`` (fsynced): nothing half-extracted is ever under its final name.
- An interrupted extraction (kill -9, a full disk) leaves ``<dest>.partial/``; the next run keeps the entries
  already complete there (size and CRC checked again), removes ``.part`` leftovers and extracts the rest.
- A single top folder in the archive (``development/...``) is dropped, so that files land in ``dest``.
"""
from __future__ import annotations

import os
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from manifests.atomic import OutsideFolderError, inside

PARTIAL_SUFFIX = ".partial"


class ExtractError(RuntimeError):
    """An archive that cannot be extracted (truncated, corrupt, not a 7z); the message names it."""


@dataclass
class ExtractReport:
    dest: Path
    extracted: int = 0                 # entries written by this run
    kept: int = 0                      # entries already complete from an interrupted run
    refused: list[tuple[str, str]] = field(default_factory=list)  # (entry name, why)


def unsafe_reason(name: str) -> str | None:
    """Why an entry name may not be written under the target folder, or None when it may."""
    if not name or "\x00" in name:
        return "empty name or NUL byte"
    if "\\" in name:
        return "backslash in name (a Windows path)"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = PurePosixPath(name).parts
    if ".." in parts:
        return "climbs out of the target folder (..)"
    return None


def _top_folder(names: list[str]) -> str | None:
    """The one folder every entry sits in, when there is one."""
    tops = {PurePosixPath(n).parts[0] for n in names}
    if len(tops) == 1 and all(len(PurePosixPath(n).parts) > 1 for n in names):
        return tops.pop()
    return None


class _EntryWriter:
    """A py7zr Py7zIO writing one entry to ``<path>.part``; renamed to ``path`` on close if size and CRC32 match."""

    def __init__(self, path: Path, size: int, crc: int | None, done: list):
        self.path, self.size, self.crc, self.done = path, size, crc, done
        self.part = path.with_name(path.name + ".part")
        self.part.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(self.part, "wb")
        self.crc_now, self.written = 0, 0

    def write(self, s: bytes | bytearray) -> int:
        self.f.write(s)
        self.crc_now = zlib.crc32(s, self.crc_now)
        self.written += len(s)
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.written

    def seekable(self) -> bool:
        return False

    def flush(self) -> None:
        self.f.flush()

    def size(self) -> int:
        return self.written

    def close(self) -> None:
        if self.f.closed:
            return
        self.f.close()
        if self.written == self.size and (self.crc is None or self.crc_now == self.crc):
            os.replace(self.part, self.path)
            self.done.append(self.path)
        # otherwise the .part stays: py7zr raises for the archive, and the next run removes it


def extract_7z(archive: Path, dest: Path, log=print) -> ExtractReport:
    """Extract ``archive`` into ``dest`` as described in the module docstring; ``dest`` existing means done."""
    import py7zr
    from py7zr.io import WriterFactory

    report = ExtractReport(dest)
    if dest.is_dir():
        return report
    staging = dest.with_name(dest.name + PARTIAL_SUFFIX)
    try:
        with py7zr.SevenZipFile(archive, mode="r") as z:
            infos = z.list()
            entries = {}
            for info in infos:
                name = info.filename
                why = unsafe_reason(name)
                if why is None and info.is_symlink:
                    why = "symbolic link"
                elif why is None and not (info.is_file or info.is_directory):
                    why = "not a regular file (junction, socket or device)"
                if why:
                    report.refused.append((name, why))
                    continue
                if not info.is_directory:
                    entries[name] = info
            top = _top_folder(list(entries))
            staging.mkdir(parents=True, exist_ok=True)

            def out_path(name: str) -> Path:
                rel = PurePosixPath(name)
                if top:
                    rel = PurePosixPath(*rel.parts[1:])
                try:
                    return inside(staging, rel)
                except OutsideFolderError:  # a folder planted as a symlink in the staging area
                    raise ExtractError(f"{archive}: entry {name!r} would land outside {dest}") from None

            for leftover in staging.rglob("*.part"):
                leftover.unlink()
            todo = []
            for name, info in entries.items():
                p = out_path(name)
                if p.is_file() and p.stat().st_size == info.uncompressed and _crc_file(p) == info.crc32:
                    report.kept += 1
                else:
                    todo.append(name)
            done: list[Path] = []

            class Factory(WriterFactory):
                def create(self, filename: str):
                    rel = Path(filename).resolve().relative_to(Path(staging_arg).resolve()).as_posix()
                    info = entries[rel]
                    return _EntryWriter(out_path(rel), info.uncompressed, info.crc32, done)

            staging_arg = (staging / ".py7zr").resolve()  # py7zr joins names under it; our writer maps them back
            if todo:
                z.reset()
                z.extract(path=staging_arg, targets=todo, factory=Factory())
            report.extracted = len(done)
            missing = [n for n in todo if not out_path(n).is_file()]
            if missing:
                raise ExtractError(f"{archive}: {len(missing)} entries did not extract completely (first: "
                                   f"{missing[0]}); run the command again")
    except ExtractError:
        raise
    except (py7zr.exceptions.ArchiveError, py7zr.exceptions.PasswordRequired, py7zr.exceptions.AbsolutePathError,
            EOFError, ValueError, KeyError, OSError, MemoryError) as e:  # unsupported methods (BCJ2) included
        raise ExtractError(f"{archive}: cannot extract ({type(e).__name__}: {' '.join(str(e).split()) or 'truncated or corrupt'})"
                           f"; entries already complete are kept in {staging}") from e
    shutil.rmtree(staging / ".py7zr", ignore_errors=True)
    os.replace(staging, dest)
    _fsync_dir(dest.parent)
    return report


def _crc_file(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
