"""The files of a dataset, a directory or a tar archive, by relative POSIX path."""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path


class Tree:
    """The files of a directory or tar archive, by relative POSIX path.

    A tar is read in one streaming pass; the bytes of members for which `keep(name)` is
    true are held in memory so they need not be read again.
    """

    def __init__(self, path: Path, keep: Callable[[str], bool] = lambda name: False):
        self.path = path
        self.files: list[str] = []
        self.dirs: set[str] = set()
        self._blobs: dict[str, bytes] = {}
        if path.is_dir():
            self._walk_dir()
        elif tarfile.is_tarfile(path):
            self._walk_tar(keep)
        else:
            raise ValueError(f"{path} is neither a directory nor a tar archive")
        for name in [*self.files, *self.dirs]:  # a tar need not list its directories
            parent = posixpath.dirname(name)
            while parent and parent not in self.dirs:
                self.dirs.add(parent)
                parent = posixpath.dirname(parent)
        self.files.sort()

    def _walk_dir(self) -> None:
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames[:] = [d for d in dirnames if not hidden(d)]
            rel = Path(dirpath).relative_to(self.path).as_posix()
            prefix = "" if rel == "." else rel + "/"
            self.dirs.update(prefix + d for d in dirnames)
            self.files.extend(prefix + f for f in filenames if not hidden(f))

    def _walk_tar(self, keep: Callable[[str], bool]) -> None:
        with tarfile.open(self.path, "r|*") as tar:  # streaming: no seeks, no extraction
            for member in tar:
                name = posixpath.normpath(member.name).lstrip("/")
                if name in ("", ".") or any(hidden(part) for part in name.split("/")):
                    continue
                if member.isdir():
                    self.dirs.add(name)
                elif member.isfile():
                    self.files.append(name)
                    if keep(name):
                        self._blobs[name] = tar.extractfile(member).read()

    def children(self, folder: str) -> tuple[list[str], list[str]]:
        """Names of the directories and files directly inside `folder` ("" = the top)."""
        prefix = folder + "/" if folder else ""

        def direct(names: Iterable[str]) -> list[str]:
            rest = (n[len(prefix) :] for n in names if n.startswith(prefix))
            return [r for r in rest if "/" not in r]

        return sorted(direct(self.dirs)), direct(self.files)

    def read(self, name: str) -> bytes:
        if name in self._blobs:
            return self._blobs.pop(name)  # read once: let the memory go
        if self.path.is_dir():
            return (self.path / name).read_bytes()
        with tarfile.open(self.path, "r:*") as tar:
            return tar.extractfile(name).read()

    def where(self, root: str) -> str:
        """The tree's path and `root` in it, for messages."""
        return f"{self.path}{'/' + root if root else ''}"


def hidden(name: str) -> bool:
    # .DS_Store, AppleDouble ._ files and __MACOSX folders are never data
    return name.startswith(".") or name == "__MACOSX"


def join(root: str, name: str) -> str:
    return f"{root}/{name}" if root else name


def listing(dirs: list[str], files: list[str], limit: int = 12) -> str:
    names = [d + "/" for d in dirs] + files
    if not names:
        return "nothing"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
