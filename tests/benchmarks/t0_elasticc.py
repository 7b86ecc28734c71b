"""T0 throughput on the 5,689 ELAsTiCC alerts: decode only vs the full T0 (filter, ingest, states,
tickets) into a fresh SQLite store, with 1 and with 10 channels. Run on demand:

    python tests/benchmarks/t0_elasticc.py [--alerts PATH] [--repeat N] [--batch-size N]

Prints one table. Rates are alerts per second of the process's CPU time (the fair measure on a
machine shared with other work; wall-clock rates beside them); "read" is the tar.gz archive read
alone, "decode floor" the Avro records alone decoded from records held in memory (with cavro where
it is installed, schemas compiled once, else fastavro: the floor of issue 23), "decode" adds
`ElasticcAlertFormat.decode` (records to alerts and datapoints), and the T0 rows are the engine's
whole T0 task (source read included), as a share of the decode floor ("/ floor"), of reading and
decoding the records ("/ read+floor": the same work the T0 must do before anything else) and of the
format's decode ("/ decode"), all by CPU time. Needs ampel-plugin-lsst installed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ampel_core import _core_plugin, plugins
from ampel_core.alerts import FileSource
from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.registry import get_registry
from ampel_core.testing import shared_data_dir

TAR = "elasticc/alerce_simulator_elasticc_v0_9_5689alerts.tar.gz"
ALL_KINDS = ["LSST_DP", "LSST_FP", "LSST_UL"]


def best_of(repeat: int, measure: Callable[[], int]) -> tuple[int, float, float]:
    """(items, CPU seconds, wall seconds) of the run with the least CPU time of ``repeat`` runs."""
    def timed() -> tuple[int, float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        items = measure()
        return items, time.process_time() - cpu, time.perf_counter() - wall

    return min((timed() for _ in range(repeat)), key=lambda result: result[1])


def channels(count: int) -> list[dict[str, Any]]:
    """``count`` channels: the first takes everything, the others apply different cuts and rights."""
    if count == 1:
        return [{"name": "ALL", "access": ALL_KINDS, "t2": [{"unit": "T2LightCurveSummary"}]}]
    made = []
    for index in range(count):
        cuts = {"min_snr": 3 + index, "min_detections": 1 + index % 3, "min_bands": 1 + index % 2,
                "positive_only": index % 2 == 0}
        made.append({"name": f"CHANNEL_{index}", "access": ALL_KINDS if index % 3 else ["LSST_DP"],
                     "filter": {"unit": "SimpleLSSTFilter", "config": cuts},
                     **({"combiner": {"unit": "LSSTPhotometryCombiner"}} if index % 4 == 3 else {}),
                     "t2": [{"unit": "T2LightCurveSummary"}]})
    return made


def decoder_alone() -> tuple[str, Callable[[bytes], list[Any]]]:
    """(name, function): the records of an Avro container decoded and nothing else, by cavro
    (schemas compiled once) where it is installed, else by fastavro (schemas parsed once)."""
    import io

    import orjson

    from ampel_lsst.avro_schemas import ContainerReader

    try:
        import cavro
    except ImportError:
        reader = ContainerReader()
        return "fastavro", lambda payload: reader.read(payload)[0]
    from ampel_lsst.avro_schemas import _HEADER, _read

    compiled: dict[bytes, Any] = {}
    options = cavro.PERMISSIVE_OPTIONS.replace(record_decodes_to_dict=True)

    def records(payload: bytes) -> list[Any]:
        stream = io.BytesIO(payload)
        header = _read(stream, _HEADER)
        raw = header["meta"]["avro.schema"]
        schema = compiled.get(raw) or compiled.setdefault(raw, cavro.Schema(orjson.loads(raw), options=options))
        found = []
        while stream.tell() < len(payload):
            count, size = _read(stream, "long"), _read(stream, "long")
            reader = cavro.MemoryReader(stream.read(size))
            stream.read(16)
            found += [schema.binary_read(reader) for _ in range(count)]
        return found

    return "cavro", records


def full_t0(alerts: Path, channel_count: int, batch_size: int) -> int:
    with tempfile.TemporaryDirectory() as folder:
        job = load_job({
            "name": f"benchmark-{channel_count}", "store": f"sqlite:///{folder}/bench.db",
            "channels": channels(channel_count),
            "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)], "pattern": "*.avro*"}},
                       "format": {"name": "elasticc"}, "batch_size": batch_size}],
        })
        summary = run_job(job)
        assert summary.quarantined == 0, summary.as_dict()
        return summary.alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=Path, help=f"the archive (default: ../shared/data/{TAR})")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the fastest counts")
    parser.add_argument("--batch-size", type=int, default=200, help="alerts per T0 transaction")
    args = parser.parse_args()
    shared = shared_data_dir(Path(__file__).resolve().parent)
    alerts = args.alerts or (shared / TAR if shared else None)
    if alerts is None or not alerts.exists():
        raise SystemExit(f"no alerts at {alerts}: pass --alerts PATH")

    manager = plugins.new_manager()  # only the core and this plugin: other plugins cannot skew it
    plugins.register(manager, _core_plugin, plugins.CORE_DISTRIBUTION)
    from ampel_lsst import plugin as lsst_plugin

    plugins.register(manager, lsst_plugin, "ampel-plugin-lsst")
    plugins.set_manager(manager)
    alert_format = get_registry().component("formats", "elasticc")()
    source = FileSource(paths=[str(alerts)], pattern="*.avro*")

    def read() -> int:
        return sum(1 for _ in source)

    records = list(source)

    def decode() -> int:
        return sum(len(alert_format.decode(r.payload, r.origin)) for r in records)

    floor_decoder, records_alone = decoder_alone()

    def floor() -> int:
        return sum(len(records_alone(r.payload)) for r in records)

    full_t0(alerts, 10, args.batch_size)  # a warm-up: imports what the T0 path needs
    rows = [("read tar.gz (records)", *best_of(args.repeat, read)),
            (f"decode floor ({floor_decoder})", *best_of(args.repeat, floor)),
            ("decode only (alerts)", *best_of(args.repeat, decode)),
            ("full T0, 1 channel", *best_of(args.repeat, lambda: full_t0(alerts, 1, args.batch_size))),
            ("full T0, 10 channels", *best_of(args.repeat, lambda: full_t0(alerts, 10, args.batch_size)))]
    print(f"\nT0 throughput, {alerts.name}, batch size {args.batch_size}, best of {args.repeat} (by CPU time)")
    print(f"{'mode':<24}{'items':>8}{'cpu s':>8}{'cpu/s':>8}{'wall/s':>8}{'/ floor':>9}{'/ read+floor':>13}{'/ decode':>9}")
    (_, _, read_cpu, _), (_, floor_items, floor_cpu, _), (_, decode_items, decode_cpu, _) = rows[:3]
    floor_rate, decode_rate = floor_items / floor_cpu, decode_items / decode_cpu
    read_floor_rate = floor_items / (read_cpu + floor_cpu)
    for mode, items, cpu, wall in rows:
        rate = items / cpu
        shares = f"{rate / floor_rate:>9.0%}{rate / read_floor_rate:>13.0%}{rate / decode_rate:>9.0%}" if "T0" in mode else ""
        print(f"{mode:<24}{items:>8}{cpu:>8.2f}{rate:>8.0f}{items / wall:>8.0f}{shares}")


if __name__ == "__main__":
    main()
