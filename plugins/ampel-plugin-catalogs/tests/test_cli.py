"""``ampel catalog``: import, list, info, match and xmatch on the shipped GWGC, checked against
astropy's SkyCoord.separation at RA 0/360 and near the poles; errors as one ``error:`` line."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ampel_core.cli import main
from astropy.coordinates import SkyCoord
from astropy.table import Table

GWGC = Path(__file__).resolve().parents[3] / "docs/examples/data/catalogs/gwgc/gwgc_good.csv"


def ampel(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``ampel ARGS`` in this process: exit code, standard output, standard error."""
    try:
        main(list(args))
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped GWGC imported through the command, in a subprocess (the real entry point)."""
    folder = tmp_path_factory.mktemp("catalogs")
    done = subprocess.run([sys.executable, "-m", "ampel_core.cli", "catalog", "import", "gwgc", str(GWGC),
                           "--ra", "RAJ2000", "--dec", "DEJ2000", "--id", "NED_name", "--keep", "maj,Dist",
                           "--root", str(folder)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("catalogue gwgc: 47177 rows from")
    return folder


def test_list_and_info(capsys: pytest.CaptureFixture[str], root: Path) -> None:
    code, out, _ = ampel(capsys, "catalog", "list", "--root", str(root), "--format", "json")
    assert code == 0 and [(c["name"], c["rows"], c["columns"]) for c in json.loads(out)] == [("gwgc", 47177, "maj, Dist")]
    code, out, _ = ampel(capsys, "catalog", "info", "gwgc", "--root", str(root), "--format", "csv")
    fields = dict(csv.reader(io.StringIO(out)))
    assert code == 0 and fields["rows"] == "47177" and fields["origin"] == str(GWGC)
    assert fields["ra_column"] == "RAJ2000" and len(fields["origin_sha256"]) == 64
    code, out, _ = ampel(capsys, "catalog", "info", str(root / "gwgc"))  # a folder is a location too
    assert code == 0 and "NED_name" in out


def test_match_sn2021rhu_finds_ngc7814(capsys: pytest.CaptureFixture[str], root: Path) -> None:
    code, out, _ = ampel(capsys, "catalog", "match", "gwgc", "0.8142854", "16.1456866", "--radius", "10",
                         "--root", str(root), "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == ["NGC7814"] and rows[0]["Dist"] == 13.18
    code, out, _ = ampel(capsys, "catalog", "match", "gwgc", "0.8142854", "16.1456866", "--radius", "600",
                         "--mode", "all", "--column", "Dist", "--root", str(root))
    assert code == 0 and "NGC7814" in out and "PGC000259" in out and "maj" not in out


def test_match_at_the_south_pole_with_a_negative_dec(capsys: pytest.CaptureFixture[str], root: Path) -> None:
    code, out, _ = ampel(capsys, "catalog", "match", "gwgc", "205.0", "-90", "--radius", "7200", "--mode", "all",
                         "--root", str(root), "--format", "csv")
    galaxies = Table.read(GWGC)
    distance = SkyCoord(galaxies["RAJ2000"], galaxies["DEJ2000"], unit="deg").separation(
        SkyCoord(205.0, -90.0, unit="deg")).arcsec
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and sorted(r["id"] for r in rows) == sorted(galaxies["NED_name"][distance <= 7200])
    assert len(rows) >= 2
    np.testing.assert_allclose(sorted(float(r["separation"]) for r in rows), sorted(distance[distance <= 7200]),
                               atol=1e-6)


def test_xmatch_equals_brute_force_across_ra_zero_and_the_poles(capsys: pytest.CaptureFixture[str], root: Path,
                                                                tmp_path: Path) -> None:
    galaxies = Table.read(GWGC)
    rng = np.random.default_rng(19)
    picks = rng.integers(0, len(galaxies), 40)
    ra = np.mod(np.asarray(galaxies["RAJ2000"])[picks] + rng.normal(0, 20 / 3600, 40), 360)
    dec = np.clip(np.asarray(galaxies["DEJ2000"])[picks] + rng.normal(0, 20 / 3600, 40), -90, 90)
    ra = np.append(ra, [359.999, 0.0005, 38.0, 25.0, 100.0])  # around UGC12889 at RA 0.007, both poles
    dec = np.append(dec, [47.2745, 47.2745, 89.3464, -89.3346, 0.0])
    inputs = Table({"name": [f"alert{i}" for i in range(len(ra))], "ra": ra, "dec": dec})
    inputs.write(tmp_path / "alerts.csv")
    radius = 60.0
    code, _, err = ampel(capsys, "catalog", "xmatch", "gwgc", str(tmp_path / "alerts.csv"), "--ra", "ra", "--dec",
                         "dec", "--radius", str(radius), "--mode", "all", "-o", str(tmp_path / "out.csv"),
                         "--root", str(root))
    assert code == 0, err
    out = Table.read(tmp_path / "out.csv")
    assert out.colnames == ["name", "ra", "dec", "gwgc_id", "gwgc_ra", "gwgc_dec", "gwgc_maj", "gwgc_Dist", "separation"]
    separations = SkyCoord(ra[:, None], dec[:, None], unit="deg").separation(
        SkyCoord(galaxies["RAJ2000"], galaxies["DEJ2000"], unit="deg")).arcsec
    pairs = [(f"alert{i}", galaxies["NED_name"][j], separations[i, j]) for i, j in zip(*np.nonzero(separations <= radius),
                                                                                      strict=True)]
    assert sorted((str(r["name"]), str(r["gwgc_id"])) for r in out) == sorted((a, g) for a, g, _ in pairs)
    assert {"UGC12889"} <= {str(r["gwgc_id"]) for r in out if r["name"] in ("alert40", "alert41")}
    found = {(str(r["name"]), str(r["gwgc_id"])): float(r["separation"]) for r in out}
    for name, galaxy, separation in pairs:
        assert found[(name, galaxy)] == pytest.approx(separation, abs=1e-6)
    assert f"of {len(ra)} rows" in err

    code, _, _ = ampel(capsys, "catalog", "xmatch", "gwgc", str(tmp_path / "alerts.csv"), "--ra", "ra", "--dec", "dec",
                       "--radius", str(radius), "--keep-unmatched", "-o", str(tmp_path / "left.csv"), "--root", str(root))
    left = Table.read(tmp_path / "left.csv")
    assert code == 0 and list(left["name"]) == list(inputs["name"])  # nearest: one row per input, in order
    assert bool(np.ma.getmaskarray(left["gwgc_id"])[-1])  # (100, 0) has no galaxy within 60"


def test_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], root: Path, tmp_path: Path) -> None:
    clash = tmp_path / "clash.csv"
    clash.write_text("name,ra,dec,separation\nx,0.8142854,16.1456866,1\n")
    for args, message in [
        (["match", "nothing", "1", "2", "--radius", "3"], "no catalogue 'nothing'"),
        (["match", "gwgc", "1", "2", "--radius", "0"], "positive number of arcsec"),
        (["match", "gwgc", "1", "95", "--radius", "3"], "|dec| <= 90"),
        (["import", "x", str(GWGC), "--ra", "RA", "--dec", "DEJ2000"], "no column 'RA'"),
        (["xmatch", "gwgc", str(clash), "--ra", "ra", "--dec", "dec", "--radius", "3"], "already has column separation"),
        (["xmatch", "gwgc", str(clash), "--ra", "name", "--dec", "dec", "--radius", "3"], "1 input rows have no valid"),
    ]:
        code, _, err = ampel(capsys, "catalog", *args, "--root", str(root))
        assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, (args, err)


def test_the_command_is_listed_by_ampel_help() -> None:
    done = subprocess.run([sys.executable, "-m", "ampel_core.cli", "--help"], capture_output=True, text=True,
                          env={**os.environ, "AMPEL_DEBUG": ""}, timeout=120)
    assert done.returncode == 0 and "catalog" in done.stdout and "ampel-plugin-catalogs" in done.stdout
