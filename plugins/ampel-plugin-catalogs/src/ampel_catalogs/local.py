"""The local backend: a catalogue is a folder ``<root>/<name>/`` holding ``catalog.parquet`` (the
sources sorted by their HEALPix index, so that neighbours on the sky are neighbours in the file)
and ``info.json`` (`CatalogInfo`). Matching builds a KD-tree of the sources' unit vectors once per
opened catalogue (scipy); a radius is a chord on the unit sphere, and separations are the exact
great-circle angles of the chords, so RA 0/360 and the poles need no special case.

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


def default_root() -> Path:
    return Path(os.environ.get("AMPEL_CATALOGS", "catalogs"))


def unit_vectors(ra: npt.ArrayLike, dec: npt.ArrayLike) -> np.ndarray:
    """Unit vectors (n x 3) of positions in degrees."""
    ra_rad, dec_rad = np.radians(np.asarray(ra, dtype=float)), np.radians(np.asarray(dec, dtype=float))
    cos_dec = np.cos(dec_rad)
    return np.stack([cos_dec * np.cos(ra_rad), cos_dec * np.sin(ra_rad), np.sin(dec_rad)], axis=-1)


class LocalBackend:
    """Catalogues in folders under ``root``."""

    name = "local"

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()

    def create(self, name: str, table: Table, origin: str = "", origin_sha256: str = "") -> CatalogInfo:
        """Store ``table`` (columns ``id``, ``ra``, ``dec`` in degrees, then the kept columns) as the
        catalogue ``name``, replacing one of that name; its info."""
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
        import astropy.units as u

        pixels = HEALPix(nside=2**HEALPIX_LEVEL, order="nested").lonlat_to_healpix(
            np.mod(ra, 360) * u.deg, dec * u.deg)
        ordered = table[np.argsort(pixels, kind="stable")]
        ordered["id"] = ordered["id"].astype(str)
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "catalog.parquet"
        ordered.write(path, format="parquet", overwrite=True)
        info = CatalogInfo(name, self.name, len(ordered), tuple(c for c in ordered.colnames if c not in ("id", "ra", "dec")),
                           origin, origin_sha256, _sha256(path))
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

    @property
    def path(self) -> Path:
        """The file a unit declares as a resource (its digest goes into the trace)."""
        return self.folder / "catalog.parquet"

    def table(self) -> Table:
        if self._table is None:
            from astropy.table import Table

            self._table = Table.read(self.path, format="parquet")
        return self._table

    def match(self, ra: npt.ArrayLike, dec: npt.ArrayLike, radius: float, mode: Mode = "nearest",
              columns: tuple[str, ...] | None = None) -> Table:
        from astropy.table import Table
        from scipy.spatial import cKDTree

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
        table = self.table()
        if self._tree is None:
            self._tree = cKDTree(unit_vectors(table["ra"], table["dec"]))
        chord = 2 * np.sin(np.radians(min(radius, 180 * 3600) / 3600) / 2)
        points = unit_vectors(ra_in, dec_in)
        if mode == "all":
            found = self._tree.query_ball_point(points, chord * (1 + 1e-12))
            inputs = np.repeat(np.arange(len(points)), [len(f) for f in found])
            rows = np.fromiter((i for f in found for i in f), dtype=np.int64, count=len(inputs))
            distances = np.linalg.norm(points[inputs] - self._tree.data[rows], axis=1) if len(rows) else np.zeros(0)
        else:
            distances, rows = self._tree.query(points, k=1, distance_upper_bound=chord * (1 + 1e-12))
            inputs = np.flatnonzero(np.isfinite(distances))
            rows, distances = rows[inputs], distances[inputs]
        separations = np.degrees(2 * np.arcsin(np.clip(distances / 2, 0, 1))) * 3600
        inside = separations <= radius
        inputs, rows, separations = inputs[inside], rows[inside], separations[inside]
        order = np.lexsort((separations, inputs))
        inputs, rows, separations = inputs[order], rows[order], separations[order]
        result = Table({"input": inputs, "id": np.asarray(table["id"])[rows].astype(str),
                        "ra": np.asarray(table["ra"], dtype=float)[rows], "dec": np.asarray(table["dec"], dtype=float)[rows],
                        "separation": separations})
        for column in kept:
            result[column] = table[column][rows]
        assert tuple(result.colnames[:len(MATCH_COLUMNS)]) == MATCH_COLUMNS
        return result

    def close(self) -> None:
        self._table, self._tree = None, None


def _info(path: Path) -> CatalogInfo:
    document = json.loads(path.read_text())
    return CatalogInfo(**{**document, "columns": tuple(document["columns"])})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
