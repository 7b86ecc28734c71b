"""The provenance chain of a result, state or datapoint, and its W3C PROV form.

result <- unit trace (distribution, version, code digest, resources, config) <- state <- datapoints
<- alerts (origin: file, archive member or stream offset) <- runs (job digest, environment).
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from ampel_core.errors import AmpelError, optional_import
from ampel_core.store import Store

__all__ = ["provenance_chain", "to_prov_document"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _parse(identifier: str) -> tuple[str, str]:
    kind, sep, value = identifier.partition(":")
    if sep and kind in ("result", "state", "datapoint"):
        return kind, value
    if _HEX64.fullmatch(identifier):
        return "state", identifier
    if identifier.isdecimal():
        return "result", identifier
    raise AmpelError(f"cannot read {identifier!r} as an id: use result:N, state:<64 hex digits> or "
                     "datapoint:STOCK:N (STOCK a stock name or id)")


def provenance_chain(store: Store, identifier: str) -> dict[str, Any]:
    """Everything behind ``identifier`` as a JSON-able dict (see module doc)."""
    kind, value = _parse(identifier)
    chain: dict[str, Any] = {}
    datapoint_ids: list[int] = []
    stock_id: int | None = None
    if kind == "result":
        if not value.isdecimal() or int(value) >= 2**63:
            raise AmpelError(f"no result {value!r}: a result is a number (result:N); `ampel stock show` lists them")
        result = store.get_result(int(value))
        if result is None:
            raise AmpelError(f"no result {value} in {store.url}")
        chain["result"] = {"id": int(value), **asdict(result)}
        trace = store.get_trace(result.trace)
        chain["trace"] = asdict(trace) if trace else {"id": result.trace, "missing": True}
        stock_id = result.stock
        if result.link_kind == "state":
            kind, value = "state", result.link
        elif result.link_kind == "point":
            datapoint_ids = [int(result.link)]
        else:
            datapoint_ids = [dp.id for dp in store.stock_datapoints(result.stock)]
    if kind == "state":
        state = store.get_state(value)
        if state is None:
            raise AmpelError(f"no state {value} in {store.url}")
        chain["state"] = {"id": state.id, "stock": state.stock, "datapoints": len(state.datapoints)}
        datapoint_ids, stock_id = list(state.datapoints), state.stock
    if kind == "datapoint":
        name, _, number = value.rpartition(":")
        stock_id = store.find_stock(name) if name else None
        # upper limits may have negative ids; ids are 64-bit
        if stock_id is None or not number.lstrip("-").isdecimal() or not -2**63 <= int(number) < 2**63:
            raise AmpelError(f"no datapoint {value!r} in {store.url} (use datapoint:STOCK:N, STOCK a stock name or id)")
        datapoint_ids = [int(number)]
    points, alerts, runs = [], {}, set()
    datapoints = store.get_datapoints(stock_id, datapoint_ids) if stock_id is not None else []
    for dp in datapoints:
        alert, run = store.datapoint_origin(dp.stock, dp.id)
        points.append({"id": dp.id, "time": dp.time, "band": dp.band, "upper_limit": dp.upper_limit,
                       "tags": list(dp.tags), "alert": alert, "run": run})
        if alert is not None and alert not in alerts:
            origin = store.alert_origin(alert)
            alerts[alert] = {"id": alert, "origin": origin[0] if origin else None, "run": origin[1] if origin else None}
        if run is not None:
            runs.add(run)
    if kind == "datapoint" and not points:
        raise AmpelError(f"no datapoint {value} in {store.url}")
    if "result" in chain and chain["result"]["run"] is not None:
        runs.add(chain["result"]["run"])
    stock = store.get_stock(datapoints[0].stock) if datapoints else None
    chain["stock"] = {"id": stock.id, "names": list(stock.names)} if stock else None
    chain["datapoints"] = points
    chain["alerts"] = list(alerts.values())
    chain["runs"] = []
    for run_id in sorted(runs):
        record = store.get_run(run_id)
        if record:
            chain["runs"].append({"id": record.id, "job_digest": record.job_digest, "job_name": record.job.get("name"),
                                  "started": record.started, "status": record.status, "environment": record.environment})
    return chain


def to_prov_document(chain: dict[str, Any]) -> Any:
    """The chain as a W3C PROV document (``prov`` package): results, states, datapoints and alerts
    are entities; T0 ingest and T2 runs are activities; distributions are agents."""
    doc: Any = optional_import("prov.model", "prov").ProvDocument()  # prov's annotations do not admit plain str attribute keys
    doc.add_namespace("ampel", "https://ampelproject.github.io/ns#")
    runs = {}
    for run in chain["runs"]:
        runs[run["id"]] = doc.activity(f"ampel:run/{run['id']}", other_attributes={
            "ampel:job_digest": run["job_digest"], "ampel:python": run["environment"].get("python", ""),
            "ampel:platform": run["environment"].get("platform", "")})
    for alert in chain["alerts"]:
        entity = doc.entity(f"ampel:alert/{alert['id']}", {"ampel:origin": alert["origin"] or ""})
        if alert["run"] in runs:
            doc.used(runs[alert["run"]], entity)
    points = []
    for dp in chain["datapoints"]:
        entity = doc.entity(f"ampel:datapoint/{chain['stock']['id']}/{dp['id']}", {"ampel:band": dp["band"], "ampel:time": dp["time"]})
        points.append(entity)
        if dp["alert"] is not None:
            doc.wasDerivedFrom(entity, f"ampel:alert/{dp['alert']}")
        if dp["run"] in runs:
            doc.wasGeneratedBy(entity, runs[dp["run"]])
    source = points
    if "state" in chain:
        state = doc.entity(f"ampel:state/{chain['state']['id']}", {"ampel:datapoints": chain["state"]["datapoints"]})
        for point in points:
            doc.hadMember(state, point)
        source = [state]
    if "result" in chain:
        result, trace = chain["result"], chain["trace"]
        entity = doc.entity(f"ampel:result/{result['id']}", {"ampel:unit": result["unit"], "ampel:status": result["status"]})
        agent = doc.softwareAgent if hasattr(doc, "softwareAgent") else doc.agent
        unit_agent = agent(f"ampel:trace/{trace['id']}", {
            "ampel:unit": trace.get("unit", ""), "ampel:distribution": trace.get("distribution", ""),
            "ampel:version": trace.get("version", ""), "ampel:code_digest": trace.get("code", "")})
        doc.wasAttributedTo(entity, unit_agent)
        for item in source:
            doc.wasDerivedFrom(entity, item)
        if result["run"] in runs:
            doc.wasGeneratedBy(entity, runs[result["run"]])
            doc.wasAssociatedWith(runs[result["run"]], unit_agent)
    return doc
