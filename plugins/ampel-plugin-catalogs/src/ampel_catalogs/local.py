"""The local backend: a catalogue is a folder ``<root>/<name>/`` holding ``catalog.parquet`` (the
sources sorted by their HEALPix index, so that neighbours on the sky are neighbours in the file)
and ``info.json`` (`CatalogInfo`), beside an index derived from the Parquet file: ``xyz.npy`` (the
sources' unit vectors, float64), ``radec.npy`` (their RA and Dec as stored) and ``ids.npy`` (their
ids, fixed-width UTF-8). The index is memory-mapped, so that an opened catalogue costs its unit
vectors and its KD-tree in memory, and the rest only for the rows a match returns; kept columns
are read from the Parquet file on the first match that asks for them. A folder without the index
(or with one older than its Parquet file) gets it rebuilt on opening.

Matching builds a KD-tree of the unit vectors once per opened catalogue (scipy, one core); a
radius is a chord on the unit sphere, and separations are the exact great-circle angles of the
chords, so RA 0/360 and the poles need no special case.

The root is ``$AMPEL_CATALOGS`` or ``./catalogs``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ampel_catalogs.catalog import MATCH_COLUMNS, MODES, CatalogError, CatalogInfo, Mode

if TYPE_CHECKING:
    import numpy.typing as npt
    from astropy.table import Table

__all__ = ["HEALPIX_LEVEL", "LocalBackend", "LocalCatalog", "default_root", "unit_vectors"]

HEALPIX_LEVEL = 10  # nside 1024: pixels of 3.4 arcmin, the order of the rows in the file
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_INDEX = ("xyz.npy", "radec.npy", "ids.npy")
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
        _write_index(folder, np.asarray(ordered["ra"], dtype=float), np.asarray(ordered["dec"], dtype=float),
                     np.asarray(ordered["id"]))
        info = CatalogInfo(name, self.name, len(ordered),
                           tuple(c for c in ordered.colnames if c not in ("id", "ra", "dec")),
                           origin, origin_sha256, _sha256(path), dict(extra or {}))
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
        self._radec: np.ndarray | None = None
        self._ids: np.ndarray | None = None
        self._columns: dict[str, Any] = {}

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

        if mode not in MODES:
            raise CatalogError(f"unknown match mode {mode!r}; use one of {', '.join(MODES)}")
        if not (np.isfinite(radius) and radius > 0):
            raise CatalogError(f"the match radius must be a positive number of arcsec, got {radius!r}")
        ra_in, dec_in = np.atleast_1d(np.asarray(ra, dtype=float)), np.atleast_1d(np.asarray(dec, dtype=float))
        if ra_in.shape != dec_in.shape or not (np.isfinite(ra_in).all() and np.isfinite(dec_in).all()
                                               and (np.abs(dec_in) <= 90).all()):
            raise CatalogError("positions must be finite, with |dec| <= 90 and as many RAs as Decs")
        kept = self.info.columns if columns is None else tuple(columns)
        unknown = [c for c in kept if c not in self.info.columns]
        if unknown:
            raise CatalogError(f"catalogue {self.info.name} has no column {', '.join(unknown)} "
                               f"(it has {', '.join(self.info.columns) or 'none'})")
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
        if mode == "all" and len(inputs) > 1:
            order = np.lexsort((separations, inputs))
            inputs, rows, separations = inputs[order], rows[order], separations[order]
        assert self._radec is not None and self._ids is not None
        radec = self._radec[rows]
        result = Table({"input": inputs, "id": np.char.decode(self._ids[rows], "utf-8"),
                        "ra": radec[:, 0], "dec": radec[:, 1], "separation": separations}, copy=False)
        for column in kept:
            result[column] = self._column(column)[rows]
        assert tuple(result.colnames[:len(MATCH_COLUMNS)]) == MATCH_COLUMNS
        return result

    def close(self) -> None:
        self._table, self._tree, self._radec, self._ids, self._columns = None, None, None, None, {}

    def _build(self) -> Any:
        from scipy.spatial import cKDTree

        if any(not (self.folder / f).is_file() or (self.folder / f).stat().st_mtime < self.path.stat().st_mtime
               for f in _INDEX):
            table = self.table()
            _write_index(self.folder, np.asarray(table["ra"], dtype=float), np.asarray(table["dec"], dtype=float),
                         np.asarray(table["id"]).astype(str))
            self._table = None
        xyz, self._radec, self._ids = (np.load(self.folder / f, mmap_mode="r") for f in _INDEX)
        # the tree keeps the memory map's pages (no copy); its own arrays are the index and the nodes
        self._tree = cKDTree(xyz, leafsize=16, compact_nodes=False, balanced_tree=False, copy_data=False)
        return self._tree

    def _column(self, name: str) -> Any:
        """One kept column, read from the Parquet file once (as an astropy column, masks kept)."""
        if name not in self._columns:
            from astropy.table import Table

            self._columns[name] = Table.read(self.path, format="parquet", include_names=[name])[name]
        return self._columns[name]


def _write_index(folder: Path, ra: np.ndarray, dec: np.ndarray, ids: np.ndarray) -> None:
    np.save(folder / "xyz.npy", unit_vectors(ra, dec))
    np.save(folder / "radec.npy", np.stack([ra, dec], axis=1))
    encoded = np.char.encode(np.asarray(ids, dtype=str), "utf-8")
    np.save(folder / "ids.npy", encoded if len(encoded) else np.zeros(0, dtype="S1"))


def _info(path: Path) -> CatalogInfo:
    document = json.loads(path.read_text())
    return CatalogInfo(**{**document, "columns": tuple(document["columns"])})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
