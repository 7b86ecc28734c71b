"""The local backend: a catalogue is a folder ``<root>/<name>/`` holding ``catalog.parquet`` (the
sources sorted by their HEALPix index, so that neighbours on the sky are neighbours in the file)
and ``info.json`` (`CatalogInfo`), beside an index derived from the Parquet file: ``xyz.npy`` (the
sources' unit vectors, float64), ``radec.npy`` (their RA and Dec as stored), ``ids.npy`` (their
ids, fixed-width UTF-8), one ``column-N.npy`` (and ``column-N.mask.npy`` where values are missing)
per kept column of numbers, booleans or text, and ``index.json`` naming them. The unit
vectors are memory-mapped (shared between processes that match against one catalogue) and the
rest is read row by row for the rows a match returns, so that an opened catalogue costs its unit
vectors and its KD-tree in memory (2 M sources: about 80 MB); a kept column of another kind is read from the Parquet
file on the first match that asks for it. A folder without the index (or with one older than its
Parquet file) gets it rebuilt on the first match.

Matching builds a KD-tree of the unit vectors once per opened catalogue (scipy, one core); a
radius is a chord on the unit sphere, and separations are the exact great-circle angles of the
chords, so RA 0/360 and the poles need no special case.

The root is ``$AMPEL_CATALOGS`` or ``./catalogs``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ampel_catalogs.catalog import MATCH_COLUMNS, CatalogError, CatalogInfo, Mode, checked_query, file_sha256

if TYPE_CHECKING:
    import numpy.typing as npt
    from astropy.table import Table

__all__ = ["HEALPIX_LEVEL", "LocalBackend", "LocalCatalog", "default_root", "unit_vectors"]

HEALPIX_LEVEL = 10  # nside 1024: pixels of 3.4 arcmin, the order of the rows in the file
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_INDEX = ("xyz.npy", "radec.npy", "ids.npy", "index.json")
_CHORD_MARGIN = 1 + 1e-12  # the tree's bound is a chord; exact angles decide afterwards


def default_root() -> Path:
    return Path(os.environ.get("AMPEL_CATALOGS", "catalogs"))


def unit_vectors(ra: npt.ArrayLike, dec: npt.ArrayLike) -> np.ndarray:
    """Unit vectors (n x 3, C order) of positions in degrees; computed in place, so that a large
    catalogue needs one temporary array beside the result."""
    ra_rad = np.radians(np.asarray(ra, dtype=float))
    dec_rad = np.radians(np.asarray(dec, dtype=float))
    xyz = np.empty((*ra_rad.shape, 3))
    np.cos(dec_rad, out=xyz[..., 0])
    np.multiply(xyz[..., 0], np.sin(ra_rad), out=xyz[..., 1])
    np.cos(ra_rad, out=ra_rad)
    xyz[..., 0] *= ra_rad
    np.sin(dec_rad, out=xyz[..., 2])
    return xyz


class LocalBackend:
    """Catalogues in folders under ``root``."""

    name = "local"

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def create(self, name: str, table: Table, origin: str = "", origin_sha256: str = "",
               extra: dict[str, str] | None = None) -> CatalogInfo:
        """Store ``table`` (columns ``id``, ``ra``, ``dec`` in degrees, then the kept columns) as the
        catalogue ``name``, replacing one of that name; its info (``extra``: recorded as is)."""
        import astropy.units as u
        from astropy_healpix import HEALPix

        if not _NAME.fullmatch(name):
            raise CatalogError(f"catalogue name {name!r}: use letters, digits, '_', '.' and '-'")
        missing = [c for c in ("id", "ra", "dec") if c not in table.colnames]
        if missing:
            raise CatalogError(f"catalogue {name}: the table has no column {', '.join(missing)}")
        ra, dec = np.asarray(table["ra"], dtype=float), np.asarray(table["dec"], dtype=float)
        bad = ~(np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90))
        if bad.any():
            raise CatalogError(f"catalogue {name}: {int(bad.sum())} rows have no valid position (first: row "
                               f"{int(np.flatnonzero(bad)[0])}); drop them before importing")
        pixels = HEALPix(nside=2**HEALPIX_LEVEL, order="nested").lonlat_to_healpix(
            np.mod(ra, 360) * u.deg, dec * u.deg)
        ordered = table[np.argsort(pixels, kind="stable")]
        ordered["id"] = np.asarray(ordered["id"]).astype(str)
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "catalog.parquet"
        ordered.write(path, format="parquet", overwrite=True)
        _write_index(folder, ordered)
        info = CatalogInfo(name, self.name, len(ordered),
                           tuple(c for c in ordered.colnames if c not in ("id", "ra", "dec")),
                           origin, origin_sha256, file_sha256(path), dict(extra or {}))
        (folder / "info.json").write_text(json.dumps(asdict(info), indent=2) + "\n")
        return info

    def open(self, name: str) -> LocalCatalog:
        folder = self.root / name
        if not (folder / "info.json").is_file():
            known = ", ".join(info.name for info in self.list()) or "none"
            raise CatalogError(f"no catalogue {name!r} in {self.root} (catalogues there: {known}); import one with "
                               "`ampel catalog import`, or set AMPEL_CATALOGS")
        return LocalCatalog(folder)

    def list(self) -> list[CatalogInfo]:
        if not self.root.is_dir():
            return []
        return [_info(folder / "info.json") for folder in sorted(self.root.iterdir()) if (folder / "info.json").is_file()]


class LocalCatalog:
    """An opened local catalogue; the KD-tree is built on the first match."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.info = _info(folder / "info.json")
        self._table: Table | None = None
        self._tree: Any = None
        self._radec: _Rows | None = None
        self._ids: _Rows | None = None
        self._columns: dict[str, Any] = {}
        self._stored: dict[str, dict[str, Any]] = {}
        self._empty: dict[tuple[str, ...], Table] = {}  # an empty result per choice of columns

    @property
    def path(self) -> Path:
        """The file a unit declares as a resource (its digest goes into the trace)."""
        return self.folder / "catalog.parquet"

    def table(self) -> Table:
        """The whole catalogue as one table (id, ra, dec, kept columns), read on first use."""
        if self._table is None:
            from astropy.table import Table

            self._table = Table.read(self.path, format="parquet")
        return self._table

    def match(self, ra: npt.ArrayLike, dec: npt.ArrayLike, radius: float, mode: Mode = "nearest",
              columns: tuple[str, ...] | None = None) -> Table:
        from astropy.table import Table

        ra_in, dec_in, kept = checked_query(self.info, ra, dec, radius, mode, columns)
        tree = self._tree if self._tree is not None else self._build()
        chord = 2 * np.sin(np.radians(min(radius, 180 * 3600) / 3600) / 2) * _CHORD_MARGIN
        points = unit_vectors(ra_in.ravel(), dec_in.ravel())
        if mode == "all":
            found = tree.query_ball_point(points, chord, return_sorted=False)
            counts = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
            inputs = np.repeat(np.arange(len(points)), counts)
            rows = np.concatenate([np.asarray(f, dtype=np.int64) for f in found]) if len(inputs) else np.zeros(0, int)
            distances = np.linalg.norm(points[inputs] - tree.data[rows], axis=1) if len(rows) else np.zeros(0)
        else:
            distances, rows = tree.query(points, k=1, distance_upper_bound=chord)
            inputs = np.flatnonzero(np.isfinite(distances))
            rows, distances = rows[inputs], distances[inputs]
        separations = np.degrees(2 * np.arcsin(np.clip(distances / 2, 0, 1))) * 3600
        inside = separations <= radius
        inputs, rows, separations = inputs[inside], rows[inside], separations[inside]
        if not len(inputs) and kept in self._empty:  # most alerts match nothing: a slice is 3x cheaper
            empty: Table = self._empty[kept][:0]
            return empty
        if mode == "all" and len(inputs) > 1:
            order = np.lexsort((separations, inputs))
            inputs, rows, separations = inputs[order], rows[order], separations[order]
        assert self._radec is not None and self._ids is not None
        radec = self._radec[rows]
        values = {"input": inputs, "id": np.char.decode(self._ids[rows], "utf-8"), "ra": radec[:, 0],
                  "dec": radec[:, 1], "separation": separations}
        # one Table call: adding columns one by one afterwards costs 4x as much per column
        result = Table({**values, **{column: self._take(column, rows) for column in kept}}, copy=False)
        assert tuple(result.colnames[:len(MATCH_COLUMNS)]) == MATCH_COLUMNS
        if not len(result):
            self._empty[kept] = result
        return result

    def close(self) -> None:
        self._table, self._tree, self._radec, self._ids, self._columns, self._empty = None, None, None, None, {}, {}

    def _build(self) -> Any:
        from scipy.spatial import cKDTree

        if any(not (self.folder / f).is_file() or (self.folder / f).stat().st_mtime < self.path.stat().st_mtime
               for f in _INDEX):
            try:
                _write_index(self.folder, self.table())
            except OSError as error:
                raise CatalogError(f"catalogue {self.info.name}: its index in {self.folder} is missing or older than "
                                   f"catalog.parquet and cannot be written ({error}); make the folder writable or "
                                   "import the catalogue again") from None
            self._table = None
        xyz = np.load(self.folder / "xyz.npy", mmap_mode="r")
        self._radec, self._ids = _Rows(self.folder / "radec.npy"), _Rows(self.folder / "ids.npy")
        self._stored = json.loads((self.folder / "index.json").read_text())["columns"]
        # the tree keeps the memory map's pages (no copy); its own arrays are the index and the nodes
        self._tree = cKDTree(xyz, leafsize=64, compact_nodes=False, balanced_tree=False, copy_data=False)
        return self._tree

    def _take(self, name: str, rows: np.ndarray) -> Any:
        """The values of the kept column ``name`` at ``rows``, as an astropy column (masks kept)."""
        from astropy.table import Column, MaskedColumn

        stored = self._stored.get(name)
        if stored is None:  # not in the index: read from the Parquet file once
            if name not in self._columns:
                from astropy.table import Table

                self._columns[name] = Table.read(self.path, format="parquet", include_names=[name])[name]
            return self._columns[name][rows]
        if name not in self._columns:
            mask = _Rows(self.folder / stored["mask"]) if stored["mask"] else None
            self._columns[name] = (_Rows(self.folder / stored["file"]), mask)
        values, mask = self._columns[name]
        taken = values[rows]
        if stored["text"]:
            taken = np.char.decode(taken, "utf-8")
        if mask is None:
            return Column(taken, name=name, unit=stored["unit"])
        return MaskedColumn(taken, mask=mask[rows], name=name, unit=stored["unit"])


class _Rows:
    """Rows of a ``.npy`` file read on demand: a few with one ``pread`` each, many at once with one
    read of the whole file (memory-mapping reads far more than the rows asked for, and keeps it)."""

    _MANY = 20_000

    def __init__(self, path: Path) -> None:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(handle)
            self.offset = handle.tell()
        if fortran or dtype.hasobject:
            raise CatalogError(f"{path}: not an index file of this version; delete the catalogue's *.npy files")
        self.path, self.shape, self.dtype = path, tuple(shape), dtype
        self.row_bytes = int(dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64)))

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) > self._MANY:
            return np.asarray(np.load(self.path, mmap_mode=None)[rows])
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            size, offset = self.row_bytes, self.offset
            data = b"".join([os.pread(descriptor, size, offset + row * size) for row in rows.tolist()])
        finally:
            os.close(descriptor)
        return np.frombuffer(data, dtype=self.dtype).reshape((len(rows), *self.shape[1:]))


def _write_index(folder: Path, table: Table) -> None:
    """The memory-mapped index of a catalogue's table (see the module docstring)."""
    ra, dec = np.asarray(table["ra"], dtype=float), np.asarray(table["dec"], dtype=float)
    _save(folder / "xyz.npy", unit_vectors(ra, dec))
    _save(folder / "radec.npy", np.stack([ra, dec], axis=1))
    _save(folder / "ids.npy", _utf8(np.asarray(table["id"]).astype(str)))
    columns: dict[str, dict[str, Any]] = {}
    for number, name in enumerate(c for c in table.colnames if c not in ("id", "ra", "dec")):
        column = table[name]
        if column.ndim != 1 or column.dtype.kind not in "biufUS":
            continue
        mask = np.asarray(getattr(column, "mask", np.zeros(len(column), bool)), dtype=bool)
        text = column.dtype.kind in "US"
        values = np.asarray(column.filled("" if text else 0) if mask.any() else column)
        if text:
            values = _utf8(values.astype(str) if values.dtype.kind == "U" else np.char.decode(values, "utf-8"))
        _save(folder / f"column-{number}.npy", values)
        if mask.any():
            _save(folder / f"column-{number}.mask.npy", mask)
        columns[name] = {"file": f"column-{number}.npy", "mask": f"column-{number}.mask.npy" if mask.any() else None,
                         "text": text, "unit": None if column.unit is None else str(column.unit)}
    partial = folder / "index.json.partial"
    partial.write_text(json.dumps({"columns": columns}, indent=1) + "\n")
    os.replace(partial, folder / "index.json")  # last: the index is complete once this file is new


def _save(path: Path, values: np.ndarray) -> None:
    """Write a .npy file whole or not at all (a process matching meanwhile never reads half of one)."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        np.save(handle, values)
    os.replace(partial, path)


def _utf8(values: np.ndarray) -> np.ndarray:
    encoded = np.char.encode(values, "utf-8")
    return encoded if len(encoded) else np.zeros(0, dtype="S1")


def _info(path: Path) -> CatalogInfo:
    document = json.loads(path.read_text())
    return CatalogInfo(**{**document, "columns": tuple(document["columns"])})
