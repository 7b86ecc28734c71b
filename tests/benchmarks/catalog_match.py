"""Catalogue matching speed and memory (issue 19's Performance section).

Run on demand:  python tests/benchmarks/catalog_match.py [--rows 2000000] [--positions 100000]
                [--single 2000] [--repeat 3] [--postgres URL] [--single-lookup MODULE:FACTORY]
                [--workdir DIR] [--no-real]

Catalogues: a generated one of ``--rows`` sources uniform on the sphere (written as CSV, then
imported: the import time is that of ``ampel_catalogs.importing.import_catalog`` on the CSV file),
and the real ones in ../shared/data/catalogs (GWGC, GCVS, SPICY) where that folder is present.
Alert positions: ``--positions`` uniform on the sphere (seeded).

Each measurement runs in a fresh process with one thread (OMP/OpenBLAS limited, scipy's
``workers=1``), every rate the best of ``--repeat``:
- batched: ``LocalCatalog.match(ra, dec, 3.0, "nearest")`` on all positions at once (positions/s);
- scipy: a bare ``cKDTree`` of the catalogue's unit vectors queried the same way (``k=1`` and the
  3" chord as ``distance_upper_bound``), in its own process: the floor the backend is held to
  (target: batched >= half of it, and >= 100,000/s);
- single: ``--single`` lookups of one position each through ``LocalCatalog.match`` (target >= 2,000/s),
  at the uniform positions (most match nothing) and, "single hit", 1" from catalogue sources;
- ``--single-lookup MODULE:FACTORY``: one more line per catalogue, ``FACTORY(location)`` returning
  a callable ``(ra, dec)`` that is timed the same way (e.g. one running ``T2CatalogMatch``);
- peak RSS: VmHWM of the process that opened the catalogue, built its tree and ran every match
  (target <= 200 MB on the 2 M rows); import: wall-clock seconds of the import (target <= 30 s).
``--postgres URL``: the same catalogues loaded into PostgreSQL with q3c (ampel_catalogs.postgres,
when installed) and matched through ``open_catalog("URL?catalog=NAME")``; skipped with a note when
that backend cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RADIUS = 3.0
REAL = {  # name -> (file under shared/data/catalogs, ra, dec, id, kept)
    "gwgc": ("gwgc_nearby_galaxies/gwgc_good.csv", "RAJ2000", "DEJ2000", "NED_name", ["Dist"]),
    "gcvs": ("fink-science/gcvs.parquet", "ra", "dec", None, ["VarType"]),
    "spicy": ("fink-science/spicy.parquet", "RAdeg", "DEdeg", None, ["class"]),
}
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def alert_positions(count: int, seed: int = 19) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.uniform(0, 360, count), np.degrees(np.arcsin(rng.uniform(-1, 1, count)))


def best_rate(call: Any, count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return count / best


# ---- children: each prints one JSON object ----

def child_import(job: dict[str, Any]) -> dict[str, Any]:
    from ampel_catalogs.importing import import_catalog

    start = time.perf_counter()
    result = import_catalog(job["name"], job["file"], job["ra"], job["dec"], job["id"], tuple(job["keep"]),
                            job["root"])
    return {"seconds": time.perf_counter() - start, "rows": result.info.rows, "rss_mb": peak_rss_mb()}


def t2_lookup(location: str) -> Any:
    """One `T2CatalogMatch` call per position, the framework's way (a configured unit, a state of
    one detection at the position, the JSON-able result): the default ``--single-lookup``."""
    from ampel_catalogs.units import T2CatalogMatch
    from ampel_core.models import DataPoint
    from ampel_core.testing import state_view

    unit = T2CatalogMatch(catalogs=[{"catalog": location, "radius": RADIUS}], position="latest")

    def lookup(ra: float, dec: float) -> Any:
        point = DataPoint(id=1, stock=1, time=60000.0, band="ztfg", flux=1000.0, flux_err=10.0,
                          extra={"ra": float(ra), "dec": float(dec)})
        return unit.process(state_view([point]))

    return lookup


def child_match(job: dict[str, Any]) -> dict[str, Any]:
    from ampel_catalogs.locations import open_catalog

    ra, dec = alert_positions(job["positions"])
    opened = open_catalog(job["location"])
    start = time.perf_counter()
    opened.match(ra[:1], dec[:1], RADIUS)  # opens the index, builds the tree
    build = time.perf_counter() - start
    found = opened.match(ra, dec, RADIUS)
    batched = best_rate(lambda: opened.match(ra, dec, RADIUS), len(ra), job["repeat"])
    count = job["single"]

    def singles() -> None:
        for i in range(count):
            opened.match(ra[i], dec[i], RADIUS)

    single = best_rate(singles, count, job["repeat"])
    rss = peak_rss_mb()  # before reading the positions below, which the catalogue itself never holds
    import numpy as np

    radec = np.load(Path(job["location"]) / "radec.npy")
    picks = np.random.default_rng(7).integers(0, len(radec), count)
    near_ra, near_dec = radec[picks, 0], np.clip(radec[picks, 1] + 1 / 3600, -90, 90)  # 1" north of a source
    del radec

    def matched_singles() -> None:
        for i in range(count):
            opened.match(near_ra[i], near_dec[i], RADIUS)

    single_matched = best_rate(matched_singles, count, job["repeat"])
    opened.close()
    return {"build_s": build, "batched": batched, "single": single, "single_matched": single_matched,
            "matched": len(found), "rss_mb": rss}


def child_lookup(job: dict[str, Any]) -> dict[str, Any]:
    """Single lookups through ``FACTORY(location)`` (default: T2CatalogMatch), in a process of their own."""
    from ampel_core.registry import import_object

    ra, dec = alert_positions(job["single"])
    lookup = import_object(job["factory"])(job["location"])
    lookup(ra[0], dec[0])  # opens the catalogue, builds the tree

    def singles() -> None:
        for i in range(job["single"]):
            lookup(ra[i], dec[i])

    return {"rate": best_rate(singles, job["single"], job["repeat"]), "rss_mb": peak_rss_mb()}


def child_scipy(job: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from scipy.spatial import cKDTree

    from ampel_catalogs.local import unit_vectors

    folder = Path(job["location"])
    radec = np.load(folder / "radec.npy")
    tree = cKDTree(unit_vectors(radec[:, 0], radec[:, 1]))
    ra, dec = alert_positions(job["positions"])
    chord = 2 * np.sin(np.radians(RADIUS / 3600) / 2)

    def query() -> None:
        tree.query(unit_vectors(ra, dec), k=1, distance_upper_bound=chord, workers=1)

    return {"batched": best_rate(query, len(ra), job["repeat"]), "rss_mb": peak_rss_mb()}


def child_postgres(job: dict[str, Any]) -> dict[str, Any]:
    from ampel_catalogs.local import LocalBackend
    from ampel_catalogs.locations import open_catalog
    from ampel_catalogs.postgres import PostgresCatalogBackend  # type: ignore[import-not-found,unused-ignore]

    local = LocalBackend(Path(job["location"]).parent).open(Path(job["location"]).name)
    start = time.perf_counter()
    PostgresCatalogBackend(job["url"]).create(local.info.name, local.table(), local.info.origin,
                                              local.info.origin_sha256)
    loaded = time.perf_counter() - start
    separator = "&" if "?" in job["url"] else "?"
    opened = open_catalog(f"{job['url']}{separator}catalog={local.info.name}")
    ra, dec = alert_positions(job["positions"])
    batched = best_rate(lambda: opened.match(ra, dec, RADIUS), len(ra), job["repeat"])

    def singles() -> None:
        for i in range(job["single"]):
            opened.match(ra[i], dec[i], RADIUS)

    single = best_rate(singles, job["single"], job["repeat"])
    opened.close()
    return {"load_s": loaded, "batched": batched, "single": single}


CHILDREN = {"import": child_import, "match": child_match, "lookup": child_lookup, "scipy": child_scipy,
            "postgres": child_postgres}


def run_child(kind: str, job: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(job)], capture_output=True,
                            text=True, env={**os.environ, **ONE_THREAD}, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} child failed: {result.stderr.strip().splitlines()[-1:]}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def generate(path: Path, rows: int, seed: int = 2026) -> None:
    """A uniform catalogue of ``rows`` sources as CSV (id, ra, dec, mag)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    table = pa.table({"id": pa.array([f"U{i:07d}" for i in range(rows)]), "ra": rng.uniform(0, 360, rows),
                      "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, rows))), "mag": rng.uniform(14, 22, rows)})
    pacsv.write_csv(table, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--positions", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=None, help="postgresql://... URL for the q3c column")
    parser.add_argument("--single-lookup", default="__main__:t2_lookup",
                        help="MODULE:FACTORY, FACTORY(location) -> f(ra, dec) (default: through T2CatalogMatch)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-real", action="store_true", help="only the generated catalogue")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        print(json.dumps(CHILDREN[arguments.child[0]](json.loads(arguments.child[1]))))
        return
    from ampel_core.testing import shared_data_dir

    work = Path(arguments.workdir or tempfile.mkdtemp(prefix="catalog-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    root = work / "catalogs"
    sources = {f"uniform{arguments.rows // 1000}k": (work / "uniform.csv", "ra", "dec", "id", ["mag"])}
    print(f"generating {arguments.rows:,} uniform sources in {work} ...", file=sys.stderr)
    generate(sources[next(iter(sources))][0], arguments.rows)
    shared = shared_data_dir(ROOT)
    if shared and not arguments.no_real:
        for name, (file, ra, dec, id_column, keep) in REAL.items():
            sources[name] = (shared / "catalogs" / file, ra, dec, id_column, keep)
    elif not arguments.no_real:
        print("note: ../shared/data not found: the real catalogues are left out", file=sys.stderr)
    common = {"positions": arguments.positions, "single": arguments.single, "repeat": arguments.repeat}
    lines, postgres_note = [], ""
    for name, (file, ra, dec, id_column, keep) in sources.items():
        print(f"{name}: import, match, scipy ...", file=sys.stderr)
        imported = run_child("import", {"name": name, "file": str(file), "ra": ra, "dec": dec, "id": id_column,
                                        "keep": keep, "root": str(root)})
        location = str(root / name)
        matched = run_child("match", {**common, "location": location})
        if arguments.single_lookup:
            matched["custom"] = run_child("lookup", {**common, "location": location,
                                                     "factory": arguments.single_lookup})["rate"]
        bare = run_child("scipy", {**common, "location": location})
        line = {"name": name, "rows": imported["rows"], "import_s": imported["seconds"], **matched,
                "scipy": bare["batched"]}
        if arguments.postgres and not postgres_note:
            try:
                line["pg"] = run_child("postgres", {**common, "location": location, "url": arguments.postgres})
            except RuntimeError as error:
                postgres_note = f"PostgreSQL column skipped: {error}"
        lines.append(line)
    print_report(lines, arguments, postgres_note)


def print_report(lines: list[dict[str, Any]], arguments: argparse.Namespace, postgres_note: str) -> None:
    header = ["catalogue", "rows", "import s", "tree s", "batched/s", "scipy/s", "batched/scipy", "single/s",
              "single hit/s", "peak RSS MB"]
    if arguments.single_lookup:
        header.insert(9, "T2CatalogMatch/s" if arguments.single_lookup == "__main__:t2_lookup" else "custom single/s")
    if any("pg" in line for line in lines):
        header += ["pg load s", "pg batched/s", "pg single/s"]
    rows = []
    for line in lines:
        row = [line["name"], f"{line['rows']:,}", f"{line['import_s']:.1f}", f"{line['build_s']:.2f}",
               f"{line['batched']:,.0f}", f"{line['scipy']:,.0f}", f"{line['batched'] / line['scipy']:.2f}",
               f"{line['single']:,.0f}", f"{line['single_matched']:,.0f}", f"{line['rss_mb']:.0f}"]
        if arguments.single_lookup:
            row.insert(9, f"{line['custom']:,.0f}")
        if any("pg" in x for x in lines):
            pg = line.get("pg")
            row += [f"{pg['load_s']:.1f}", f"{pg['batched']:,.0f}", f"{pg['single']:,.0f}"] if pg else ["-"] * 3
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"3\" nearest, {arguments.positions:,} uniform positions batched, {arguments.single:,} single lookups, "
          f"one thread, best of {arguments.repeat}")
    for row in [header, *rows]:
        print("  ".join(str(value).rjust(width) for value, width in zip(row, widths, strict=True)))
    generated = lines[0]
    checks = [("batched >= 100,000/s", generated["batched"] >= 100_000),
              ("batched within 2x of scipy", generated["batched"] >= generated["scipy"] / 2),
              ("single >= 2,000/s", min(generated["single"], generated["single_matched"]) >= 2000),
              ("single through the lookup >= 2,000/s", (generated["custom"] or 0) >= 2000),
              ("import <= 30 s", generated["import_s"] <= 30),
              ("peak RSS <= 200 MB", generated["rss_mb"] <= 200)]
    print(f"targets on {generated['name']}: " + "; ".join(f"{text}: {'yes' if ok else 'NO'}" for text, ok in checks))
    if postgres_note:
        print(postgres_note)


if __name__ == "__main__":
    main()
