"""Importing real catalogue files of every supported format: positions (degrees and sexagesimal)
against astropy, the recorded origin and digest, invalid rows refused or skipped."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord
from astropy.table import Table
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_catalogs.catalog import CatalogError
from ampel_catalogs.importing import import_catalog, positions, read_table
from ampel_catalogs.local import LocalBackend

GWGC = Path(__file__).resolve().parents[3] / "docs/examples/data/catalogs/gwgc/gwgc_good.csv"
SN2021RHU = (0.8142854, 16.1456866)  # mean ZTF position of ZTF21abiuvdk over its 34 alerts


def gwgc(tmp_path: Path, **options: object) -> LocalBackend:
    backend = LocalBackend(tmp_path / "catalogs")
    import_catalog("gwgc", GWGC, "RAJ2000", "DEJ2000", "NED_name", ("maj", "Dist"), backend.root, **options)  # type: ignore[arg-type]
    return backend


def test_the_shipped_gwgc_is_imported_with_its_origin(tmp_path: Path) -> None:
    backend = gwgc(tmp_path)
    info = backend.list()[0]
    assert (info.name, info.rows, info.columns) == ("gwgc", 47177, ("maj", "Dist"))
    assert info.origin == str(GWGC) and info.origin_sha256 == hashlib.sha256(GWGC.read_bytes()).hexdigest()
    assert info.digest == hashlib.sha256((backend.root / "gwgc" / "catalog.parquet").read_bytes()).hexdigest()
    assert info.extra["id_column"] == "NED_name" and info.extra["skipped_rows"] == "0"
    host = backend.open("gwgc").match(*SN2021RHU, 30.0)
    expected = SkyCoord(*SN2021RHU, unit="deg").separation(SkyCoord(0.8127, 16.1455, unit="deg")).arcsec
    assert list(host["id"]) == ["NGC7814"] and host["Dist"][0] == 13.18
    assert host["separation"][0] == pytest.approx(expected, abs=1e-6) and 5 < expected < 6


@pytest.mark.parametrize("suffix", [".parquet", ".fits", ".fits.gz", ".vot", ".csv.gz"])
def test_every_format_gives_the_same_catalogue(tmp_path: Path, suffix: str) -> None:
    original = Table.read(GWGC)[::97]  # 487 real rows, both hemispheres
    path = tmp_path / f"gwgc{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original.write(path, format={".csv.gz": "ascii.csv", ".vot": "votable"}.get(suffix))
    result = import_catalog("copy", path, "RAJ2000", "DEJ2000", "NED_name", ("Dist",), tmp_path / "c")
    assert result.info.rows == len(original) and result.info.extra["format"] == suffix.split(".")[1].replace(
        "vot", "votable")
    stored = LocalBackend(tmp_path / "c").open("copy").table()
    stored.sort("id")
    original.sort("NED_name")
    np.testing.assert_array_equal(stored["id"], original["NED_name"])
    np.testing.assert_array_equal(stored["ra"], original["RAJ2000"])
    np.testing.assert_array_equal(stored["Dist"], original["Dist"])


def test_tdat_of_extcats_with_empty_fields(tmp_path: Path, shared_data: Path) -> None:
    tdat = shared_data / "catalogs/extcats_milliquas_sample/heasarc_milliquas_sample.tdat"
    import_catalog("mq", tdat, "ra", "dec", "name", ("redshift", "xray_name"), tmp_path)
    opened = LocalBackend(tmp_path).open("mq")
    assert opened.info.rows == 34 and opened.info.extra["format"] == "tdat"
    near_pole = opened.match([335.7540586, 68.6369186, 0.0], [-89.3858719, -89.7716355, -90.0], 1.0)
    assert list(near_pole["id"]) == ["WISEA J222301.23-892309.1", "WISEA J043431.62-894617.9"]
    assert near_pole["xray_name"][0] == "2SXPS J222300.2-892309" and near_pole["xray_name"].mask[1]
    everything = opened.match(0.0, -90.0, 3600.0, "all")  # within a degree of the pole, all RAs
    rows = read_table(tdat)
    pole = SkyCoord(rows["ra"], rows["dec"], unit="deg").separation(SkyCoord(0, -90, unit="deg")).arcsec
    assert sorted(everything["id"]) == sorted(rows["name"][pole <= 3600])


def test_sexagesimal_csv_against_skycoord(tmp_path: Path, shared_data: Path) -> None:
    path = shared_data / "catalogs/fink-science/3hsp.csv"
    result = import_catalog("3hsp", path, "R.A.", "Dec", "3HSP Source name", ("FOM",), tmp_path)
    rows = read_table(path)
    assert result.info.rows == len(rows) == 2013
    expected = SkyCoord(rows["R.A."], rows["Dec"], unit=(u.hourangle, u.deg))
    stored = LocalBackend(tmp_path).open("3hsp").table()
    by_id = {name: i for i, name in enumerate(stored["id"])}
    order = [by_id[name] for name in rows["3HSP Source name"]]
    np.testing.assert_allclose(stored["ra"][order], expected.ra.deg, rtol=0, atol=1e-10)
    np.testing.assert_allclose(stored["dec"][order], expected.dec.deg, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("file", "ra", "dec", "rows"), [
    ("fink-science/gcvs.parquet", "ra", "dec", 59099),
    ("fink-science/spicy.parquet", "RAdeg", "DEdeg", 117446),
    ("fink-science/table-4LAC-DR3-h.fits", "RAJ2000", "DEJ2000", 3407),
    ("kowalski/igaps-dr1-215a-small.fits.gz", "RA", "DEC", 100),
])
def test_the_real_catalogues(tmp_path: Path, shared_data: Path, file: str, ra: str, dec: str, rows: int) -> None:
    result = import_catalog("real", shared_data / "catalogs" / file, ra, dec, root=tmp_path)
    assert result.info.rows == rows and result.skipped == 0
    original = read_table(shared_data / "catalogs" / file)
    first = LocalBackend(tmp_path).open("real").match(float(original[ra][5]), float(original[dec][5]), 0.1)
    assert "5" in list(first["id"])  # ids are row numbers in the file without --id


@settings(max_examples=200, deadline=None)
@given(ra=st.floats(0, 360, exclude_max=True), dec=st.floats(-90, 90),
       style=st.sampled_from(["hms", "colon", "space", "degrees"]))
def test_sexagesimal_positions_decode_as_astropy_does(ra: float, dec: float, style: str) -> None:
    ra_angle, dec_angle = Angle(ra, u.deg), Angle(dec, u.deg)
    if style == "degrees":
        texts = (ra_angle.to_string(u.deg, decimal=True, precision=12), dec_angle.to_string(u.deg, decimal=True,
                                                                                             precision=12))
    else:
        sep = {"hms": "hms", "colon": ":", "space": " "}[style]
        texts = (ra_angle.to_string(u.hourangle, sep=sep, precision=8, pad=True),
                 dec_angle.to_string(u.deg, sep="dms" if sep == "hms" else sep, precision=7, alwayssign=True, pad=True))
    table = Table({"ra": [texts[0]], "dec": [texts[1]]})
    ra_deg, dec_deg, valid = positions(table, "ra", "dec")
    assert valid.all()
    coordinate = SkyCoord(ra_deg[0], dec_deg[0], unit="deg")
    assert coordinate.separation(SkyCoord(ra, dec, unit="deg")).arcsec < 1e-3


def test_rows_without_a_position_are_refused_or_skipped(tmp_path: Path) -> None:
    lines = GWGC.read_text().splitlines()[:21]
    lines[3] = lines[3].replace(lines[3].split(",")[1], "", 1)  # no RA
    lines[7] = ",".join([*lines[7].split(",")[:2], "95.0", *lines[7].split(",")[3:]])  # |Dec| > 90
    lines[9] = ",".join([*lines[9].split(",")[:1], "nowhere", *lines[9].split(",")[2:]])
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CatalogError, match=r"3 of 20 rows have no valid position.*first: row 2.*--skip-invalid"):
        import_catalog("broken", path, "RAJ2000", "DEJ2000", "NED_name", root=tmp_path)
    result = import_catalog("broken", path, "RAJ2000", "DEJ2000", "NED_name", root=tmp_path, skip_invalid=True)
    assert (result.skipped, result.info.rows, result.info.extra["skipped_rows"]) == (3, 17, "3")


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no such file"):
        import_catalog("x", tmp_path / "missing.csv", "ra", "dec", root=tmp_path)
    (tmp_path / "table.txt").write_text("ra,dec\n1,2\n")
    with pytest.raises(CatalogError, match=r"cannot tell its format.*--format"):
        import_catalog("x", tmp_path / "table.txt", "ra", "dec", root=tmp_path)
    with pytest.raises(CatalogError, match=r"no column 'RA'.*RAJ2000"):
        import_catalog("x", GWGC, "RA", "DEJ2000", root=tmp_path)
    with pytest.raises(CatalogError, match="no column 'size'"):
        import_catalog("x", GWGC, "RAJ2000", "DEJ2000", keep=("size",), root=tmp_path)
    with pytest.raises(CatalogError, match="cannot keep a column named separation"):
        import_catalog("x", GWGC, "RAJ2000", "DEJ2000", keep=("separation",), root=tmp_path)
    (tmp_path / "bad.fits").write_bytes(b"not a FITS file")
    with pytest.raises(CatalogError, match=r"bad.fits: cannot be read as fits"):
        import_catalog("x", tmp_path / "bad.fits", "ra", "dec", root=tmp_path)


def test_the_index_is_rebuilt_and_large_answers_are_read_whole(tmp_path: Path) -> None:
    backend = gwgc(tmp_path)
    folder = backend.root / "gwgc"
    first = backend.open("gwgc").match(0.0, 90.0, 90 * 3600.0, "all")  # the northern sky: > 20,000 rows
    galaxies = Table.read(GWGC)
    north = np.asarray(galaxies["DEJ2000"]) >= 0
    assert len(first) == int(north.sum()) > 20_000
    assert sorted(first["id"]) == sorted(galaxies["NED_name"][north])
    for index_file in folder.glob("*.npy"):
        index_file.unlink()
    (folder / "index.json").unlink()
    again = backend.open("gwgc").match(0.0, 90.0, 90 * 3600.0, "all")
    assert (folder / "xyz.npy").is_file()
    for column in first.colnames:
        np.testing.assert_array_equal(again[column], first[column])
