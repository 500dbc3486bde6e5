"""How an index folder is stored: item metadata in SQLite (read row by row, never parsed whole), arrays opened
memory-mapped, and the folder written atomically (a new index goes to a temporary folder beside the target and
is renamed into place; nothing is ever written through a path that was already in the target folder)."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from manifests.atomic import current_umask

REBUILD = "rebuild the index with `wt5k-search index`"


class IndexFileError(ValueError):
    """A file of an index folder is missing or damaged (the message names it and says to rebuild)."""

    def __init__(self, path: Path, what: str):
        super().__init__(f"search index file {path} {what}: {REBUILD}")


class ItemStore(Sequence[dict]):
    """``items.sqlite``: one row per item (position, id, path, captions as JSON), read on demand: opening costs
    nothing at any size, a lookup by position or by id reads one row. Safe to share between threads."""

    FILE = "items.sqlite"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise IndexFileError(self.path, "is missing")
        # read-only and immutable: no lock files, no journal; an index is replaced whole, never edited in place
        uri = self.path.resolve().as_uri() + "?mode=ro&immutable=1"
        try:
            self._con = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._n = self._con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise IndexFileError(self.path, f"cannot be read ({e})") from None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._n

    @staticmethod
    def _item(row: tuple) -> dict:
        return {"id": row[0], "path": row[1], "captions": json.loads(row[2])}

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"item {i} out of range (0..{self._n - 1})")
        with self._lock:
            row = self._con.execute("SELECT id, path, captions FROM items WHERE pos = ?", (i,)).fetchone()
        if row is None:
            raise IndexFileError(self.path, f"has no row {i}")
        return self._item(row)

    def __iter__(self) -> Iterator[dict]:
        with self._lock:
            rows = self._con.execute("SELECT id, path, captions FROM items ORDER BY pos").fetchall()
        return (self._item(r) for r in rows)

    def position(self, item_id: str) -> int | None:
        with self._lock:
            row = self._con.execute("SELECT pos FROM items WHERE id = ?", (item_id,)).fetchone()
        return None if row is None else int(row[0])

    @classmethod
    def write(cls, path: str | os.PathLike, items: Iterable[dict]) -> int:
        """Write items (any iterable: a lazy sequence of millions is streamed); ids must be unique."""
        con = sqlite3.connect(str(path))
        try:
            con.execute("PRAGMA journal_mode = OFF")
            con.execute("PRAGMA synchronous = OFF")  # the folder is fsynced and renamed into place after
            con.execute("CREATE TABLE items (pos INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, path TEXT NOT NULL,"
                        " captions TEXT NOT NULL)")
            rows = ((i, it["id"], str(it["path"]), json.dumps(list(it.get("captions") or []), ensure_ascii=False))
                    for i, it in enumerate(items))
            try:
                con.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", rows)
            except sqlite3.IntegrityError as e:
                raise ValueError(f"item ids must be unique ({e})") from None
            con.commit()
            return con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        finally:
            con.close()


def load_array(path: Path, mmap: bool = True, rows: int | None = None, dim: int | None = None) -> np.ndarray:
    """A float32 [rows, dim] array of an index folder, memory-mapped (pages are read when a query touches
    them); a missing, truncated or foreign file is an IndexFileError naming it."""
    if not path.is_file():
        raise IndexFileError(path, "is missing")
    try:
        a = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise IndexFileError(path, f"is damaged or truncated ({e})") from None
    if a.ndim != 2 or (rows is not None and a.shape[0] != rows) or (dim is not None and a.shape[1] != dim):
        raise IndexFileError(path, f"holds an array of shape {a.shape}, expected ({rows}, {dim})")
    return a


def write_index_folder(out: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a new temporary folder beside ``out``, then put it in ``out``'s place.

    ``out`` may not exist, or must be an index folder (it holds index.json) or empty: a folder of other files is
    never replaced. ``out`` itself may not be a symbolic link; links inside the old folder are removed with
    it, never followed. A crash before the rename leaves the old index as it was (and a ``.<name>.new-*``
    folder, removed by the next save); between the two renames (a moment) the old index stays whole under
    ``.<name>.old-*`` beside it."""
    out = Path(out)
    if out.is_symlink():
        raise ValueError(f"--out {out} is a symbolic link; give the folder itself")
    if out.exists():
        if not out.is_dir():
            raise NotADirectoryError(f"--out {out} exists and is not a folder")
        if not (out / "index.json").is_file() and any(out.iterdir()):
            raise ValueError(f"--out {out} exists and is not a search index (no index.json); choose another "
                             "folder (an index folder is replaced whole)")
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.new-*"):  # what a killed save left: never an index
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0o700 would hide the index from other users
        write(tmp)
        for f in tmp.iterdir():  # the data reaches the disk before the rename makes it the index
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "index")
            os.replace(tmp, out)
            shutil.rmtree(old)  # rmtree removes symbolic links, it never follows them
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out

