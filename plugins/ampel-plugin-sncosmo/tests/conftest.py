"""Light curves for the sncosmo tests: sncosmo's bundled example (shipped files only) and SN 2021rhu
(34 ZTF alerts in ../shared/data, decoded here with fastavro as in ../shared/data/README.md §3)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ampel_core.models import DataPoint

RHU_FOLDER = "ztf_alerts/pitt-google/ZTF21abiuvdk_SN2021rhu"
RHU_REDSHIFT = 0.0035  # NGC 7814, supplied by hand (see ../shared/data/README.md §3)
RHU_BOUNDS = {"x1": (-5.0, 5.0), "c": (-0.5, 1.0)}
ZTF_BANDS = {1: "ztfg", 2: "ztfr", 3: "ztfi"}


@pytest.fixture(scope="session")
def example_datapoints() -> list[DataPoint]:
    """sncosmo.load_example_data() (simulated SALT2: z 0.5, t0 55100, x1 0.5, c 0.2) as DataPoints."""
    import sncosmo

    table = sncosmo.load_example_data()
    return [DataPoint(id=i + 1, stock=1, time=float(row["time"]), band=str(row["band"]), flux=float(row["flux"]),
                      flux_err=float(row["fluxerr"]), zp=float(row["zp"]), zpsys=str(row["zpsys"]))
            for i, row in enumerate(table)]


def rhu_candidates(folder: Path) -> dict[int, dict[str, Any]]:
    """Detections (candidate + prv_candidates with a candid and magpsf) of the alerts, by candid."""
    fastavro = pytest.importorskip("fastavro")
    found: dict[int, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.avro")):
        with open(path, "rb") as handle:
            for alert in fastavro.reader(handle):
                for candidate in [alert["candidate"], *(alert["prv_candidates"] or [])]:
                    if candidate.get("candid") is not None and candidate.get("magpsf") is not None:
                        found[candidate["candid"]] = candidate
    return found


@pytest.fixture(scope="session")
def rhu_datapoints(shared_data: Path) -> list[DataPoint]:
    """SN 2021rhu detections: PSF magnitudes as flux at zp 25 (AB), sign from isdiffpos."""
    points = []
    for candid, c in sorted(rhu_candidates(shared_data / RHU_FOLDER).items()):
        flux = (1 if c["isdiffpos"] in ("t", "1") else -1) * 10 ** (-0.4 * (c["magpsf"] - 25))
        points.append(DataPoint(
            id=candid, stock=1, time=c["jd"] - 2400000.5, band=ZTF_BANDS[c["fid"]], flux=flux,
            flux_err=abs(flux) * c["sigmapsf"] * math.log(10) / 2.5, zp=25.0, zpsys="ab",
            mag=c["magpsf"], mag_err=c["sigmapsf"], tags=("ZTF_PUB",)))
    return points


@pytest.fixture(scope="session")
def reference_fits(shared_data: Path) -> dict[str, dict[str, Any]]:
    """The offline reference fits of ../shared/data/reference, by light-curve name prefix."""
    document = json.loads((shared_data / "reference/sncosmo_salt2_fits_computed_offline.json").read_text())
    return {fit["name"].split(" ")[0]: fit for fit in document["fits"]}


@pytest.fixture
def no_sncosmo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the shipped files the only data folder besides a unit's data_dir."""
    monkeypatch.delenv("SNCOSMO_DATA_DIR", raising=False)


@pytest.fixture
def direct_fit() -> Callable[..., tuple[Any, Any]]:
    """``direct_fit(datapoints, data_dir, vparam_names, z=None, bounds=None)``: see `fit_directly`."""
    return fit_directly


def fit_directly(datapoints: list[DataPoint], data_dir: Path, vparam_names: list[str], z: float | None = None,
                 bounds: dict[str, tuple[float, float]] | None = None) -> tuple[Any, Any]:
    """sncosmo.fit_lc on the datapoints as sncosmo users call it, with sncosmo's own data loading
    pointed at ``data_dir`` (restored afterwards)."""
    import os

    import sncosmo
    from astropy.table import Table

    table = Table(rows=sorted((dp.time, dp.band, dp.flux, dp.flux_err, dp.zp, dp.zpsys) for dp in datapoints),
                  names=("time", "band", "flux", "fluxerr", "zp", "zpsys"))
    mirror, previous_env = sncosmo.builtins.DATADIR, os.environ.get("SNCOSMO_DATA_DIR")
    previous_root = mirror._checked_rootdir
    os.environ["SNCOSMO_DATA_DIR"], mirror._checked_rootdir = str(data_dir), None
    try:
        model = sncosmo.Model(source=sncosmo.get_source("salt2", version="2.4"))
        if z is not None:
            model.set(z=z)
        return sncosmo.fit_lc(table, model, vparam_names, bounds=bounds)
    finally:
        mirror._checked_rootdir = previous_root
        if previous_env is None:
            del os.environ["SNCOSMO_DATA_DIR"]
        else:
            os.environ["SNCOSMO_DATA_DIR"] = previous_env
