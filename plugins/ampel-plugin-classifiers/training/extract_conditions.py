"""Extract the observing-conditions table shipped as ``ampel_classifiers/data/observing_conditions.json``.

Run once, from the repository root, with ../shared/data present::

    python plugins/ampel-plugin-classifiers/training/extract_conditions.py ../shared/data

It reads real alert histories and keeps only distributions (101 quantiles each), so the shipped file
is a few kB and holds no alert content:

* ZTF: every decodable ``ztf_alerts/**/*.avro`` except IPAC's simulated ones and the Feb 2018 commissioning stream (tar_tst); per alert, the epochs
  of the candidate and its ``prv_candidates`` (detections and upper limits): band frequencies, the
  gaps between consecutive epochs (<= 30 d), and each band's 5-sigma limiting magnitude
  (``diffmaglim``).
* LSST: the ELAsTiCC alerts ``elasticc/fink-science_elasticc_sample_seed0.parquet`` (flux in nJy,
  zero point 31.4) — band frequencies, gaps and, from the forced photometry of faint epochs
  (|flux| < 3 sigma), each band's 5-sigma limit ``31.4 - 2.5 log10(5 psFluxErr)`` — and the gaps
  between the detections of the 518 objects in ``elasticc/alerce_simulator_elasticc_v0_9_5689alerts.tar.gz``.
"""

from __future__ import annotations

import glob
import io
import json
import sys
import tarfile
from collections import defaultdict
from pathlib import Path

import fastavro
import numpy as np
import pyarrow.parquet as pq

ZTF_FID = {1: "ztfg", 2: "ztfr", 3: "ztfi"}
LSST_FILTER = {"u": "lsstu", "g": "lsstg", "r": "lsstr", "i": "lssti", "z": "lsstz", "Y": "lssty", "y": "lssty"}
MAX_GAP = 30.0
QUANTILES = np.linspace(0, 1, 101)


def _quantiles(values: list[float]) -> list[float]:
    return [round(float(v), 4) for v in np.quantile(np.asarray(values, dtype=float), QUANTILES)]


def _gaps(times: list[float]) -> list[float]:
    diffs = np.diff(np.unique(np.round(np.asarray(times), 4)))
    return [float(d) for d in diffs if 0 < d <= MAX_GAP]


def ztf(root: Path) -> dict[str, object]:
    bands: dict[str, int] = defaultdict(int)
    limits: dict[str, list[float]] = defaultdict(list)
    gaps: list[float] = []
    n_alerts = 0
    for path in sorted(glob.glob(str(root / "ztf_alerts/**/*.avro"), recursive=True)):
        if "ipac_simulated" in path or "tar_tst" in path:  # simulated; commissioning stream
            continue
        try:
            with open(path, "rb") as stream:
                records = list(fastavro.reader(stream))
        except Exception:
            continue
        for record in records:
            n_alerts += 1
            epochs = [record["candidate"], *(record.get("prv_candidates") or [])]
            times = []
            for epoch in epochs:
                band = ZTF_FID.get(epoch.get("fid"))
                if band is None or epoch.get("jd") is None:
                    continue
                bands[band] += 1
                times.append(epoch["jd"])
                if epoch.get("diffmaglim"):
                    limits[band].append(epoch["diffmaglim"])
            gaps += _gaps(times)
    total = sum(bands.values())
    return {"source": f"{n_alerts} real ZTF alerts (../shared/data/ztf_alerts, IPAC-simulated and 2018 commissioning ones left out)",
            "bands": {band: {"fraction": round(bands[band] / total, 4), "limiting_mag": _quantiles(limits[band])}
                      for band in ZTF_FID.values()},
            "gap_days": _quantiles(gaps), "n_gaps": len(gaps)}


def lsst(root: Path) -> dict[str, object]:
    bands: dict[str, int] = defaultdict(int)
    limits: dict[str, list[float]] = defaultdict(list)
    gaps: list[float] = []
    table = pq.read_table(root / "elasticc/fink-science_elasticc_sample_seed0.parquet",
                          columns=["diaSource", "prvDiaSources", "prvDiaForcedSources"]).to_pylist()
    for alert in table:
        forced = alert["prvDiaForcedSources"] or []
        points = [alert["diaSource"], *(alert["prvDiaSources"] or []), *forced]
        for point in points:
            bands[LSST_FILTER[point["filterName"]]] += 1
        for point in forced:
            if abs(point["psFlux"]) < 3 * point["psFluxErr"]:
                limits[LSST_FILTER[point["filterName"]]].append(31.4 - 2.5 * np.log10(5 * point["psFluxErr"]))
        gaps += _gaps([point["midPointTai"] for point in points])
    times: dict[int, list[float]] = defaultdict(list)
    with tarfile.open(root / "elasticc/alerce_simulator_elasticc_v0_9_5689alerts.tar.gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".avro"):
                stream = tar.extractfile(member)
                assert stream is not None
                for record in fastavro.reader(io.BytesIO(stream.read())):
                    source = record["diaSource"]
                    times[source["diaObjectId"]].append(source["midPointTai"])
    for object_times in times.values():
        gaps += _gaps(object_times)
    total = sum(bands.values())
    return {"source": f"{len(table)} ELAsTiCC alerts with forced photometry (fink-science sample) and the detections "
                      f"of {len(times)} ELAsTiCC objects (ALeRCE simulator); ELAsTiCC is simulated LSST data",
            "bands": {band: {"fraction": round(bands[band] / total, 4), "limiting_mag": _quantiles(limits[band])}
                      for band in dict.fromkeys(LSST_FILTER.values())},
            "gap_days": _quantiles(gaps), "n_gaps": len(gaps)}


def main(root: Path) -> None:
    out = Path(__file__).parents[1] / "src/ampel_classifiers/data/observing_conditions.json"
    table = {"description": "Observing conditions drawn from real alert histories by "
                            "training/extract_conditions.py: band fractions, 5-sigma limiting magnitude "
                            "quantiles (0..100 %) per band, quantiles of the gaps between epochs (<= 30 d).",
             "ztf": ztf(root), "lsst": lsst(root)}
    out.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
