"""The read API (mounted at ``/api`` by `ampel_serve.app.create_app`; reference: docs/api.md).

Every endpoint needs a team's token (`ampel_serve.auth.current_team`) and shows only what the team
may see (`TeamView`):

- a stock exists for a team only when one of the team's channels accepted it (anything else is
  404, whether the stock exists or not, so a team cannot probe another team's stocks);
- datapoints only when their tags meet the team's rights (ZTF_PUB, ZTF_PRIV, ...);
- states and journal lines only of the team's channels;
- a T2 result only when its unit instance (trace) is one of the team's jobs (any version) and it
  is on a state one of the team's channels saw, on a datapoint the team may see, or on the stock
  (two teams whose channels configure a unit alike on the same state share its one result, as a
  local run shares it between channels).

Tabular endpoints answer in json, csv, parquet or votable (``format=``, see `ampel_serve.formats`)
and page with ``limit`` and ``offset``. Ids of stocks, datapoints and alerts are 64-bit integers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from ampel_core.compare import flatten
from ampel_core.errors import AmpelError
from ampel_core.models import DataPoint, JournalEntry, Result, Stock
from ampel_core.provenance_report import provenance_chain
from ampel_core.sky import MAX_CONE_RADIUS
from ampel_core.store import Store
from ampel_serve.app import get_store
from ampel_serve.auth import Team, current_team
from ampel_serve.formats import MEDIA_TYPES, Format, table_response

__all__ = ["MAX_LIMIT", "SCAN_LIMIT", "TeamView", "light_curve_rows", "request_team", "router", "sees",
           "stock_document", "team_traces", "team_view"]

MAX_LIMIT = 1000  # rows of one page
SCAN_LIMIT = 5000  # stocks a search by T2 value reads (newest first) before it stops
LIGHT_CURVE_COLUMNS = ["id", "time", "band", "flux", "flux_err", "zp", "zpsys", "mag", "mag_err", "upper_limit",
                       "forced", "tags"]


# --- what a team sees --------------------------------------------------------------------------
@dataclass
class TeamView:
    """One stock as one team sees it (see the module docstring); build it with `team_view`."""

    stock: Stock
    channels: tuple[str, ...]  # the team's channels that accepted the stock
    position: tuple[float, float] | None
    datapoints: list[DataPoint]
    states: list[tuple[str, str, int | None, float]]  # channel, state, alert, time
    results: list[tuple[int, Result]] = field(default_factory=list)
    journal: list[JournalEntry] = field(default_factory=list)

    def visible_ids(self) -> set[int]:
        return {dp.id for dp in self.datapoints}


def sees(team: Team, tags: Sequence[str]) -> bool:
    """Whether the team's rights allow a datapoint with these tags."""
    return not team.rights.isdisjoint(tags)


def visible_results(store: Store, stock: int, traces: frozenset[str], states: Sequence[tuple[str, str, int | None, float]],
                    datapoints: set[int]) -> list[tuple[int, Result]]:
    """The results on ``stock`` of the team's ``traces`` on what it saw (see the module docstring)."""
    seen = {state for _, state, _, _ in states}
    return [(result_id, result) for result_id, result in store.results(stock=stock) if result.trace in traces and (
        result.link in seen if result.link_kind == "state" else
        result.link_kind == "stock" or (result.link.lstrip("-").isdecimal() and int(result.link) in datapoints))]


TRACE_CACHE_SECONDS = 2.0


async def request_team(request: Request) -> Team:
    """FastAPI dependency: `ampel_serve.auth.current_team`, called on the event loop (a plain
    function dependency would cost a hop to the thread pool on every request)."""
    return current_team(request)


def team_traces(request: Request, team: Team) -> frozenset[str]:
    """The trace ids of every version of the team's jobs (cached for a moment)."""
    cache: dict[str, tuple[float, frozenset[str]]] | None = getattr(request.app.state, "team_traces", None)
    if cache is None:
        cache = request.app.state.team_traces = {}
    now = time.monotonic()
    found = cache.get(team.name)
    if found is None or found[0] < now:
        traces = frozenset(t for version in request.app.state.jobs.versions(team=team.name) for t in version.traces)
        cache[team.name] = found = (now + TRACE_CACHE_SECONDS, traces)
    return found[1]


def team_view(store: Store, team: Team, traces: frozenset[str], stock: str | int, details: bool = True) -> TeamView:
    """The stock (a name or an id) as ``team`` (whose jobs have ``traces``) sees it; 404 when none
    of its channels has it. Without ``details`` only the stock, its position and datapoints are read."""
    found = store.find_stock(str(stock))
    info = store.get_stock(found) if found is not None else None
    channels = tuple(c for c in info.channels if c in team.channels) if info else ()
    if info is None or not channels:
        raise HTTPException(404, f"no stock {stock!r} in your channels")
    datapoints = [dp for dp in store.stock_datapoints(info.id) if sees(team, dp.tags)]
    view = TeamView(info, channels, store.positions([info.id]).get(info.id), datapoints, [])
    if details:
        view.states = [row for channel in channels for row in store.channel_states(info.id, channel)]
        view.states.sort(key=lambda row: row[3])
        view.journal = [entry for entry in store.journal(info.id) if entry.channel in team.channels]
        view.results = visible_results(store, info.id, traces, view.states, view.visible_ids())
    return view


# --- response models (the OpenAPI schema; bodies are written with orjson) -----------------------
class DatapointModel(BaseModel):
    id: int
    time: float
    band: str
    flux: float | None
    flux_err: float | None
    zp: float
    zpsys: str
    mag: float | None
    mag_err: float | None
    upper_limit: bool
    tags: list[str]
    extra: dict[str, Any] | None = None


class StateModel(BaseModel):
    channel: str
    id: str
    alert: int | None
    time: float
    datapoints: list[int]


class ResultModel(BaseModel):
    id: int
    unit: str
    trace: str
    link_kind: str
    link: str
    stock: int
    status: str
    body: Any
    run: int | None
    created: float


class JournalModel(BaseModel):
    tier: int
    action: str
    channel: str | None
    trace: str | None
    run: int | None
    alert: int | None
    detail: dict[str, Any]
    time: float


class StockModel(BaseModel):
    id: int
    names: list[str]
    channels: list[str]
    tags: list[str]
    created: float
    updated: float
    ra: float | None
    dec: float | None
    datapoints: list[DatapointModel]
    states: list[StateModel]
    results: list[ResultModel]
    journal: list[JournalModel]


class TableModel(BaseModel):
    columns: list[str]
    items: list[dict[str, Any]]
    limit: int | None = None
    offset: int | None = None
    next_offset: int | None = None


class ChannelModel(BaseModel):
    channel: str
    stocks: int


class ProvenanceModel(BaseModel):
    result: dict[str, Any]
    trace: dict[str, Any]
    state: dict[str, Any] | None = None
    stock: dict[str, Any] | None
    datapoints: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    runs: list[dict[str, Any]]


class ErrorModel(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorModel, "description": "parameters that do not go together"},
    401: {"model": ErrorModel, "description": "no token, or an invalid or expired one"},
    404: {"model": ErrorModel, "description": "not found among what the team may see"},
    429: {"model": ErrorModel, "description": "over the token's rate limit (see Retry-After)"},
}


def _tabular(model: type[BaseModel] = TableModel) -> dict[int | str, dict[str, Any]]:
    content: dict[str, Any] = {media.split(";")[0]: {} for fmt, media in MEDIA_TYPES.items() if fmt is not Format.json}
    return {**ERRORS, 200: {"model": model, "content": content,
                            "description": "json (the model below), csv, parquet or votable, as `format` asks"}}


def json_response(value: Any) -> Response:
    return Response(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def _datapoint(dp: DataPoint, extra: bool) -> dict[str, Any]:
    row = {"id": dp.id, "time": dp.time, "band": dp.band, "flux": dp.flux, "flux_err": dp.flux_err, "zp": dp.zp,
           "zpsys": dp.zpsys, "mag": dp.mag, "mag_err": dp.mag_err, "upper_limit": dp.upper_limit, "tags": list(dp.tags)}
    if extra:
        row["extra"] = dp.extra
    return row


def _result(result_id: int, result: Result) -> dict[str, Any]:
    return {"id": result_id, "unit": result.unit, "trace": result.trace, "link_kind": result.link_kind,
            "link": result.link, "stock": result.stock, "status": result.status, "body": result.body, "run": result.run,
            "created": result.created}


def stock_document(store: Store, view: TeamView, extra: bool = False) -> dict[str, Any]:
    """The JSON form of a stock for a team (`StockModel`); a state lists only the datapoints the
    team may see."""
    info, visible = view.stock, view.visible_ids()
    states = []
    for channel, state_id, alert, created in view.states:
        found = store.get_state(state_id)
        states.append({"channel": channel, "id": state_id, "alert": alert, "time": created,
                       "datapoints": [i for i in found.datapoints if i in visible] if found else []})
    return {"id": info.id, "names": list(info.names), "channels": list(view.channels), "tags": list(info.tags),
            "created": info.created, "updated": info.updated,
            "ra": view.position[0] if view.position else None, "dec": view.position[1] if view.position else None,
            "datapoints": [_datapoint(dp, extra) for dp in view.datapoints], "states": states,
            "results": [_result(i, r) for i, r in view.results],
            "journal": [{"tier": e.tier, "action": e.action, "channel": e.channel, "trace": e.trace, "run": e.run,
                         "alert": e.alert, "detail": e.detail, "time": e.time} for e in view.journal]}


def light_curve_rows(view: TeamView, upper_limits: bool = True) -> list[dict[str, Any]]:
    """The team's datapoints with a band, by time (then id): one row each (`LIGHT_CURVE_COLUMNS`)."""
    points = sorted((dp for dp in view.datapoints if dp.band and (upper_limits or not dp.upper_limit)),
                    key=lambda dp: (dp.time, dp.id))
    return [{**_datapoint(dp, False), "forced": "forced" in dp.tags, "tags": ",".join(dp.tags)} for dp in points]


# --- the router ----------------------------------------------------------------------------------
router = APIRouter(tags=["read"], responses=ERRORS)

# The endpoints take the store with `get_store` in their own body, so that the thread that uses a
# connection is the one it was opened for: async endpoints (short reads) run on the event loop and
# use its connection; the search by T2 value, which may read thousands of stocks, runs in the
# thread pool.
TeamDep = Annotated[Team, Depends(request_team)]
StockPath = Annotated[str, Path(description="a survey name (ZTF21abiuvdk) or a stock id", min_length=1, max_length=64)]
FormatQuery = Annotated[Format, Query(description="json, csv, parquet or votable")]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows of one page")]
OffsetQuery = Annotated[int, Query(ge=0, le=10**9, description="rows to skip (the previous page's next_offset)")]


@router.get("/channels", response_model=list[ChannelModel], summary="The team's channels")
async def channels(request: Request, team: TeamDep) -> Response:
    store = get_store(request)
    return json_response([{"channel": c, "stocks": len(store.select_stocks(c))} for c in sorted(team.channels)])


@router.get("/stocks/{stock}", responses={200: {"model": StockModel}}, summary="A stock")
async def stock(request: Request, team: TeamDep, stock: StockPath,
          extra: Annotated[bool, Query(description="add each datapoint's survey fields")] = False) -> Response:
    """A stock by name or id: its names, the team's channels that accepted it, tags, position, the
    datapoints the team's rights allow, the states the team's channels saw, the team's T2 results
    and the team's journal lines."""
    store = get_store(request)
    return json_response(stock_document(store, team_view(store, team, team_traces(request, team), stock), extra))


@router.get("/stocks/{stock}/lightcurve", responses=_tabular(), summary="A stock's light curve")
async def light_curve(request: Request, team: TeamDep, stock: StockPath, format: FormatQuery = Format.json,
                upper_limits: Annotated[bool, Query(description="include upper limits")] = True) -> Response:
    """The datapoints the team may see, by time: MJD time, sncosmo band, flux (zero point ``zp``
    in ``zpsys``), magnitudes, upper-limit and forced-photometry flags, tags. A negative flux is a
    negative subtraction."""
    store = get_store(request)
    rows = light_curve_rows(team_view(store, team, team_traces(request, team), stock, details=False), upper_limits)
    return table_response(rows, LIGHT_CURVE_COLUMNS, format)


@router.get("/stocks/{stock}/results", responses=_tabular(), summary="A stock's T2 results")
async def results(request: Request, team: TeamDep, stock: StockPath, format: FormatQuery = Format.json,
            unit: Annotated[str | None, Query(max_length=200, description="only this unit's results")] = None) -> Response:
    """The team's T2 results on the stock, oldest first, one row each with the body's fields
    flattened (dotted names, e.g. ``parameters.z``)."""
    store = get_store(request)
    view = team_view(store, team, team_traces(request, team), stock)
    rows = []
    for result_id, result in view.results:
        if unit is None or result.unit == unit:
            row = _result(result_id, result)
            body = row.pop("body")
            row.update({f"body.{k}" if k else "body": v for k, v in flatten(body if body is not None else {}).items()})
            rows.append(row)
    columns = list(dict.fromkeys(key for row in rows for key in row)) or list(ResultModel.model_fields)
    return table_response(rows, columns, format)


def _page(found: list[dict[str, Any]], columns: list[str], fmt: Format, limit: int, offset: int) -> Response:
    """The page of ``limit`` rows; ``found`` holds up to one more (whether a next page exists)."""
    return table_response(found[:limit], columns, fmt, limit, offset, more=len(found) > limit)


CONE_COLUMNS = ["stock", "name", "ra", "dec", "distance", "updated"]


@router.get("/cone", responses=_tabular(), summary="Cone search")
async def cone(request: Request, team: TeamDep,
         ra: Annotated[float, Query(ge=-360, le=720, description="right ascension (degrees, ICRS)")],
         dec: Annotated[float, Query(ge=-90, le=90, description="declination (degrees, ICRS)")],
         radius: Annotated[float, Query(ge=0, le=MAX_CONE_RADIUS, description="radius (degrees, at most 5)")],
         format: FormatQuery = Format.json, limit: LimitQuery = 100, offset: OffsetQuery = 0) -> Response:
    """The team's stocks within ``radius`` degrees of (ra, dec), nearest first; ``distance`` in
    degrees. A stock's position is that of its latest alert."""
    if not all(map(math.isfinite, (ra, dec, radius))):
        raise HTTPException(400, "ra, dec and radius must be finite numbers")
    store = get_store(request)
    found = store.cone_search(ra, dec, radius, channels=sorted(team.channels), limit=offset + limit + 1)[offset:]
    stocks = {stock: store.get_stock(stock) for stock, *_ in found}
    rows = [{"stock": stock, "name": _name(stocks[stock]), "ra": r, "dec": d, "distance": distance,
             "updated": stocks[stock].updated if stocks[stock] else None}  # type: ignore[union-attr]
            for stock, r, d, distance in found]
    return _page(rows, CONE_COLUMNS, format, limit, offset)


def _name(info: Stock | None) -> str | None:
    return info.names[0] if info and info.names else None


def _lookup(body: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(body, dict) or key not in body:
            return None
        body = body[key]
    return body


def _predicate(minimum: float | None, maximum: float | None, equals: str | None) -> Callable[[Any], bool]:
    def test(value: Any) -> bool:
        if equals is not None and (value is None or str(value) != equals):
            return False
        if minimum is not None or maximum is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return False
            return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
        return True

    return test


@router.get("/stocks", responses=_tabular(), summary="Latest stocks, by channel, T2 value or class")
def latest(request: Request, team: TeamDep, format: FormatQuery = Format.json,
           channel: Annotated[str | None, Query(max_length=200, description="one of the team's channels (default: all)")] = None,
           unit: Annotated[str | None, Query(max_length=200, description="select by this T2 unit's latest result")] = None,
           path: Annotated[str | None, Query(alias="field", max_length=200,
                                             description="a field of that result's body (dotted: parameters.z, classification)")] = None,
           minimum: Annotated[float | None, Query(alias="min", description="the field's value is at least this")] = None,
           maximum: Annotated[float | None, Query(alias="max", description="the field's value is at most this")] = None,
           equals: Annotated[str | None, Query(max_length=200, description="the field's value (as text), e.g. a class")] = None,
           limit: LimitQuery = 100, offset: OffsetQuery = 0) -> Response:
    """The team's stocks, most recently updated first. With ``unit``, only stocks whose newest
    successful result of that unit (one the team may see) exists and, with ``field``, whose value
    there passes ``min``/``max``/``equals`` — e.g. the latest SN Ia candidates:
    ``unit=T2Classifier&field=classification&equals=SNIa``. Such a search reads at most `SCAN_LIMIT` of
    the newest stocks."""
    if channel is not None and channel not in team.channels:
        raise HTTPException(404, f"no channel {channel!r} among your channels")
    if (path or minimum is not None or maximum is not None or equals is not None) and not unit:
        raise HTTPException(400, "field, min, max and equals select by a T2 result: give its unit too")
    if (minimum is not None or maximum is not None or equals is not None) and not path:
        raise HTTPException(400, "min, max and equals need the result field they test (field=...)")
    store, traces = get_store(request), team_traces(request, team)
    channels = [channel] if channel else sorted(team.channels)
    columns = ["stock", "name", "ra", "dec", "updated", "channels"] + (["result", "value"] if unit else [])
    if not unit:
        page = store.latest_stocks(channels, limit + 1, offset)
        return _page(_stock_rows(store, team, page), columns, format, limit, offset)
    test, matched, scanned = _predicate(minimum, maximum, equals), list[dict[str, Any]](), 0
    while scanned < SCAN_LIMIT and len(matched) <= offset + limit:
        batch = store.latest_stocks(channels, 500, scanned)
        scanned += len(batch)
        for row in _stock_rows(store, team, batch):
            hit = _latest_result(store, team, traces, row["stock"], unit)
            if hit is not None:
                value = _lookup(hit[1].body, path) if path else None
                if not path or test(value):
                    matched.append({**row, "result": hit[0], "value": value})
        if len(batch) < 500:
            break
    return _page(matched[offset:offset + limit + 1], columns, format, limit, offset)


def _stock_rows(store: Store, team: Team, stocks: list[tuple[int, float]]) -> list[dict[str, Any]]:
    positions = store.positions(stock for stock, _ in stocks)
    rows = []
    for stock, updated in stocks:
        info = store.get_stock(stock)
        where = positions.get(stock)
        rows.append({"stock": stock, "name": _name(info), "ra": where[0] if where else None,
                     "dec": where[1] if where else None, "updated": updated,
                     "channels": ",".join(c for c in (info.channels if info else ()) if c in team.channels)})
    return rows


def _latest_result(store: Store, team: Team, traces: frozenset[str], stock: int, unit: str) -> tuple[int, Result] | None:
    """The team's newest successful result of ``unit`` on the stock's newest state the team saw (or
    on the stock or a datapoint)."""
    view = team_view(store, team, traces, stock)
    latest_state = view.states[-1][1] if view.states else None
    found = [(i, r) for i, r in view.results
             if r.unit == unit and r.status == "ok" and (r.link_kind != "state" or r.link == latest_state)]
    return found[-1] if found else None


@router.get("/results/{result}", responses={200: {"model": ResultModel}}, summary="A T2 result")
async def result(request: Request, team: TeamDep, result: Annotated[int, Path(ge=1, lt=2**63)]) -> Response:
    return json_response(_result(result, _team_result(get_store(request), team, team_traces(request, team), result)))


def _team_result(store: Store, team: Team, traces: frozenset[str], result_id: int) -> Result:
    found = store.get_result(result_id)
    if found is not None and found.trace in traces and set(_stock_channels(store, found.stock)) & team.channels:
        view = team_view(store, team, traces, found.stock)
        if any(i == result_id for i, _ in view.results):
            return found
    raise HTTPException(404, f"no result {result_id} among your results")


def _stock_channels(store: Store, stock: int) -> tuple[str, ...]:
    info = store.get_stock(stock)
    return info.channels if info else ()


@router.get("/results/{result}/provenance", responses={200: {"model": ProvenanceModel}},
            summary="The provenance chain of a T2 result")
async def provenance(request: Request, team: TeamDep, result: Annotated[int, Path(ge=1, lt=2**63)]) -> Response:
    """result → trace (unit, distribution, version, code digest, resources, config) → state →
    datapoints → alerts (origin) → runs (job digest, environment), as `ampel provenance` prints
    it; datapoints the team may not see are left out, and so are their alerts."""
    store = get_store(request)
    _team_result(store, team, team_traces(request, team), result)
    try:
        chain = provenance_chain(store, f"result:{result}")
    except AmpelError as error:  # e.g. a datapoint of the chain that is no longer readable
        raise HTTPException(404, str(error)) from None
    chain["datapoints"] = [dp for dp in chain["datapoints"] if sees(team, dp["tags"])]
    alerts = {dp["alert"] for dp in chain["datapoints"]}
    chain["alerts"] = [alert for alert in chain["alerts"] if alert["id"] in alerts]
    return json_response(chain)
