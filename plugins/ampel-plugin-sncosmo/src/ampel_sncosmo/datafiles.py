"""sncosmo's data files (models, bandpasses, magnitude systems), read from disk only, never downloaded.

sncosmo fetches a file it lacks from https://sncosmo.github.io/data into its data directory. Here
sncosmo's own loaders run against a *search path* of local folders instead, each laid out like
``SNCOSMO_DATA_DIR`` (``models/salt2/salt2-4/``, ``bandpasses/ztf/P48_g.dat``):

1. the unit's ``data_dir`` (when configured),
2. ``$SNCOSMO_DATA_DIR`` (when set),
3. the folder shipped in this package (`SHIPPED_DATA_DIR`: SALT2 2.4 and the ZTF, LSST and SDSS
   bandpasses).

Each path sncosmo asks for is taken from the first folder that has it. A path that no folder has
raises `DataFileMissing`, which names the path and the folders searched. Loaded objects are cached
per process by (name, version, search path) and come with the files they were read from, keyed by
sncosmo's relative path, so that units can declare them as resources (their digests enter the trace).
A cached object whose files changed on disk since it was read is read again, so that a long-running
worker never fits with a model other than the one its trace names.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Mapping
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["REMOTE_ROOT", "SHIPPED_DATA_DIR", "DataFileMissing", "Loaded", "SearchPath", "load_bandpass",
           "load_magsystem", "load_source", "search_path"]

SHIPPED_DATA_DIR = Path(__file__).parent / "data"
REMOTE_ROOT = "https://sncosmo.github.io/data/"

# (label, folder) pairs, first match wins; a tuple so that it can key the caches
SearchPath = tuple[tuple[str, Path], ...]


class DataFileMissing(FileNotFoundError):
    """An sncosmo data file is in none of the folders searched; the message says how to provide it."""


def search_path(data_dir: str | Path | None = None) -> SearchPath:
    """The folders searched, in order: ``data_dir``, ``$SNCOSMO_DATA_DIR``, the shipped folder.

    Raises NotADirectoryError when ``data_dir`` or ``$SNCOSMO_DATA_DIR`` is given but is not a folder.
    """
    folders: list[tuple[str, Path]] = []
    for label, value in (("data_dir", data_dir), ("SNCOSMO_DATA_DIR", os.environ.get("SNCOSMO_DATA_DIR"))):
        if value:
            folder = Path(value).expanduser().resolve()
            if not folder.is_dir():
                raise NotADirectoryError(f"sncosmo data folder {label}={value!r} is not a directory")
            folders.append((label, folder))
    folders.append(("shipped with ampel-plugin-sncosmo", SHIPPED_DATA_DIR))
    return tuple(dict.fromkeys(folders))


def _stamps(paths: Iterable[Path]) -> tuple[tuple[int, int, int], ...]:
    stats = [path.stat() for path in paths]
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


@dataclass(frozen=True)
class Loaded:
    """An sncosmo object and the files it was read from (sncosmo relative path -> absolute path)."""

    value: Any
    files: Mapping[str, Path]
    stamps: tuple[tuple[int, int, int], ...] = ()  # inode, size, mtime of the files when read

    def is_current(self) -> bool:
        """Whether the files are still those read (same inode, size and modification time)."""
        try:
            return self.stamps == _stamps(self.files.values())
        except FileNotFoundError:
            return False


class _SearchPathMirror:
    """Stands in for ``sncosmo.builtins.DATADIR`` (a `sncosmo.utils.DataMirror`): resolves a relative
    path in the search path, records what was resolved, and never downloads."""

    def __init__(self, folders: SearchPath, what: str) -> None:
        self.folders, self.what = folders, what
        self.resolved: dict[str, tuple[Path, bool]] = {}

    def rootdir(self) -> str:
        return str(self.folders[0][1])

    def abspath(self, relpath: str, isdir: bool = False) -> str:
        for _, folder in self.folders:
            candidate = folder / relpath
            if candidate.is_dir() if isdir else candidate.is_file():
                self.resolved[relpath] = (candidate, isdir)
                return str(candidate)
        searched = "; ".join(f"{folder} ({label})" for label, folder in self.folders)
        remote = f"{REMOTE_ROOT}{relpath}" + (".tar.gz, unpacked" if isdir else "")
        raise DataFileMissing(
            f"sncosmo data {'folder' if isdir else 'file'} '{relpath}' for {self.what} is missing; searched: "
            f"{searched}. ampel-plugin-sncosmo never downloads: get it from {remote} and put it at "
            f"<folder>/{relpath} in a folder given as the unit's `data_dir` or as $SNCOSMO_DATA_DIR")


_DATADIR_LOCK = threading.Lock()


def _run_loader(registry: Any, kind: str, name: str, version: str | None, folders: SearchPath) -> Loaded:
    """Run sncosmo's registered loader of (name, version) with our mirror in place of its data dir."""
    import sncosmo.builtins

    key = (name.lower(), version)
    what = f"{kind} '{name}'" + (f" version '{version}'" if version else "")
    if key not in registry._loaders:
        if key in registry._instances:  # registered in-process by the user: no files
            return Loaded(registry._instances[key], {})
        versions = sorted(str(v) for n, v in registry._loaders if n == key[0])
        if versions:
            raise LookupError(f"sncosmo has no {what}; its versions are {', '.join(versions)}: choose one")
        raise LookupError(f"sncosmo has no {kind} named '{name}'")
    loader, args, _ = registry._loaders[key]
    mirror = _SearchPathMirror(folders, what)
    kwargs = {"name": key[0]} if version is None else {"name": key[0], "version": version}
    # The loaders look up the module global DATADIR when they run; swapping it (under a lock, for
    # the duration of one load) reaches every nested lookup without touching sncosmo's own cache.
    with _DATADIR_LOCK:
        original = sncosmo.builtins.DATADIR
        sncosmo.builtins.DATADIR = mirror
        try:
            value = loader(*args, **kwargs)
        except FileNotFoundError as error:
            if isinstance(error, DataFileMissing):
                raise
            # a file inside a model folder that was found (e.g. salt2-4/ without salt2_template_1.dat)
            raise DataFileMissing(
                f"sncosmo data file {error.filename or error} for {what} is missing; the folder holding it is "
                f"incomplete: copy the whole folder from {REMOTE_ROOT} (as .tar.gz) into the unit's `data_dir` or "
                f"$SNCOSMO_DATA_DIR") from error
        finally:
            sncosmo.builtins.DATADIR = original
    files = _files_read(mirror.resolved, value)
    return Loaded(value, files, _stamps(files.values()))


def _files_read(resolved: Mapping[str, tuple[Path, bool]], value: Any) -> dict[str, Path]:
    """The files behind each resolved path: a file itself; for a model folder the files its source
    class reads (``*file`` arguments of ``__init__``, e.g. SALT2's eight), otherwise every file in it."""
    files: dict[str, Path] = {}
    for relpath, (path, isdir) in resolved.items():
        if not isdir:
            files[relpath] = path
            continue
        names = [p.default for n, p in inspect.signature(type(value).__init__).parameters.items()
                 if n.endswith("file") and isinstance(p.default, str)]
        if names:
            found = [path / n for n in names if (path / n).is_file()]
        else:
            found = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
        for file in sorted(found):
            files[f"{relpath}/{file.relative_to(path).as_posix()}"] = file
    return files


_CACHE: dict[tuple[str, str, str | None, SearchPath], Loaded] = {}


def _cached(kind: str, name: str, version: str | None, folders: SearchPath, registry: Callable[[], Any]) -> Loaded:
    key = (kind, name, version, folders)
    loaded = _CACHE.get(key)
    if loaded is None or not loaded.is_current():
        loaded = _CACHE[key] = _run_loader(registry(), kind, name, version, folders)
    return loaded


def _sources() -> Any:
    from sncosmo.models import _SOURCES

    return _SOURCES


def _bandpasses() -> Any:
    from sncosmo.bandpasses import _BANDPASSES

    return _BANDPASSES


def _magsystems() -> Any:
    from sncosmo.magsystems import _MAGSYSTEMS

    return _MAGSYSTEMS


def load_source(name: str, version: str, folders: SearchPath) -> Loaded:
    """The sncosmo Source ``name`` at ``version`` (e.g. 'salt2', '2.4'), and the files it was read from.

    Raises `DataFileMissing` naming a missing file and LookupError for an unknown name or version.
    Do not modify the returned source; `sncosmo.Model` copies it.
    """
    return _cached("source", name, version, folders, _sources)


def load_bandpass(name: str, folders: SearchPath) -> Loaded:
    """The sncosmo Bandpass ``name`` (e.g. 'ztfg', 'lsstr') and the file it was read from."""
    return _cached("bandpass", name, None, folders, _bandpasses)


def load_magsystem(name: str, folders: SearchPath) -> Loaded:
    """The sncosmo MagSystem ``name`` (e.g. 'ab': no file) and the files it was read from."""
    return _cached("magnitude system", name, None, folders, _magsystems)
