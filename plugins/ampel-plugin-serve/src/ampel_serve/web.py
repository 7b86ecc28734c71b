"""The web view: server-rendered pages (Jinja2 templates in ``templates/``) and one small script
(``static/lightcurve.js``, no build step) that draws a light curve as SVG.

- ``/login``: a form that takes a team's token and keeps it in the ``ampel_token`` cookie
  (HttpOnly, SameSite=Strict; Secure when the request came over https); ``/logout`` drops it.
- ``/``: the team's channels, each with its most recently updated stocks.
- ``/stocks/{stock}``: a stock as the team sees it (`ampel_serve.api.team_view`): the light curve
  per band (flux at zero point 25 AB; upper limits at 5 sigma as open triangles, negative
  subtractions as crosses, forced photometry as diamonds) with the SALT2 model of the newest
  successful fit (`T2SNCosmoFit`) evaluated here when ampel-plugin-sncosmo is installed, its T2
  results and its journal.
- ``/results/{id}``: a result's provenance chain: result → trace → state → datapoints → alerts → runs.

A page without a valid token redirects to the login form; another team's stock or result is 404,
exactly like one that does not exist.
"""

from __future__ import annotations

import datetime
import math
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from ampel_core.errors import AmpelError
from ampel_core.provenance_report import provenance_chain
from ampel_serve.api import TeamView, light_curve_rows, sees, team_traces, team_view
from ampel_serve.app import get_store
from ampel_serve.auth import COOKIE, Team, current_team

__all__ = ["LATEST_PER_CHANNEL", "model_curves", "router"]

LATEST_PER_CHANNEL = 25
STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"
MODEL_UNIT = "T2SNCosmoFit"

router = APIRouter(include_in_schema=False)


@cache
def _environment() -> Any:
    import jinja2

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    environment.filters["utc"] = lambda t: datetime.datetime.fromtimestamp(t, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M:%S") if t else ""
    environment.filters["json"] = lambda v: orjson.dumps(v, option=orjson.OPT_INDENT_2).decode()
    environment.filters["number"] = lambda v, digits=4: "" if v is None else f"{v:.{digits}f}"
    return environment


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_environment().get_template(template).render(**context), status_code=status)


def page_team(request: Request) -> Team | Response:
    """The team of the request's cookie (or bearer token), or the redirect to the login form when
    it has no valid one (over the rate limit stays 429)."""
    try:
        return current_team(request)
    except HTTPException as error:
        if error.status_code == 401:
            return RedirectResponse("/login", status_code=303)
        raise


@router.get("/login")
def login_form(request: Request) -> HTMLResponse:
    return render("login.html")


@router.post("/login")
def login(request: Request, token: Annotated[str, Form(max_length=512)]) -> Response:
    from ampel_serve.teams import TokenRefused

    try:
        request.app.state.teams.authenticate(token.strip())
    except TokenRefused as error:
        return render("login.html", 401, error=str(error))
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


@router.get("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/static/{name}")
def static(name: str) -> Response:
    files = {path.name: path for path in STATIC.iterdir() if path.is_file()}
    if name not in files:  # only the files that are there: no paths
        raise HTTPException(404, "no such file")
    return FileResponse(files[name], headers={"Cache-Control": "max-age=3600"})


@router.get("/", response_class=HTMLResponse)
def channels_page(request: Request) -> Response:
    team = page_team(request)
    if not isinstance(team, Team):
        return team
    store = get_store(request)
    channels = []
    for channel in sorted(team.channels):
        latest = store.latest_stocks([channel], LATEST_PER_CHANNEL)
        positions = store.positions(stock for stock, _ in latest)
        rows = []
        for stock, updated in latest:
            info = store.get_stock(stock)
            rows.append({"stock": stock, "name": info.names[0] if info and info.names else str(stock), "updated": updated,
                         "position": positions.get(stock)})
        channels.append({"name": channel, "stocks": rows})
    return render("channels.html", team=team, channels=channels)


@router.get("/stocks/{stock}", response_class=HTMLResponse)
def stock_page(request: Request, stock: str) -> Response:
    team = page_team(request)
    if not isinstance(team, Team):
        return team
    store = get_store(request)
    try:
        view = team_view(store, team, team_traces(request, team), stock)
    except HTTPException as error:
        return render("error.html", error.status_code, team=team, message=error.detail)
    points = light_curve_rows(view)
    plot = {"points": points, "models": model_curves(view, points)}
    name = view.stock.names[0] if view.stock.names else str(view.stock.id)
    # the JSON goes into a <script> element: no "</script>" may appear in it
    data = orjson.dumps(plot).decode().replace("<", "\\u003c")
    return render("stock.html", team=team, view=view, name=name, plot=data, plot_data=plot,
                  results=sorted(view.results, key=lambda item: -item[0]))


@router.get("/results/{result}", response_class=HTMLResponse)
def result_page(request: Request, result: int) -> Response:
    team = page_team(request)
    if not isinstance(team, Team):
        return team
    store = get_store(request)
    found = store.get_result(result) if 0 < result < 2**63 else None
    view = None
    if found is not None:
        try:
            view = team_view(store, team, team_traces(request, team), found.stock)
        except HTTPException:
            view = None
    if view is None or not any(i == result for i, _ in view.results):
        return render("error.html", 404, team=team, message=f"no result {result} among your results")
    try:
        chain = provenance_chain(store, f"result:{result}")
    except AmpelError as error:
        return render("error.html", 404, team=team, message=str(error))
    chain["datapoints"] = [dp for dp in chain["datapoints"] if sees(team, dp["tags"])]
    alerts = {dp["alert"] for dp in chain["datapoints"]}
    chain["alerts"] = [alert for alert in chain["alerts"] if alert["id"] in alerts]
    name = view.stock.names[0] if view.stock.names else str(view.stock.id)
    return render("provenance.html", team=team, chain=chain, name=name)


def model_curves(view: TeamView, points: list[dict[str, Any]], samples: int = 120) -> list[dict[str, Any]]:
    """The newest successful SALT2-like fit of the stock (a `T2SNCosmoFit` result with
    parameters) evaluated in each band of the light curve: ``[{"band", "unit", "result", "time":
    [...], "flux": [...]}]`` with flux at zero point 25 AB, from 20 days before t0 to 50 after
    (observer frame), where the model is defined. Empty when there is no such fit or
    ampel-plugin-sncosmo is not installed (or lacks a file the fit used)."""
    fits = [(i, r) for i, r in view.results if r.unit == MODEL_UNIT and r.status == "ok" and r.body
            and r.body.get("success") and isinstance(r.body.get("parameters"), dict)]
    if not fits:
        return []
    result_id, fit = fits[-1]
    assert fit.body is not None
    try:
        import numpy as np
        import sncosmo
        from ampel_sncosmo.datafiles import load_bandpass, load_magsystem, load_source, search_path
    except ImportError:
        return []
    try:
        folders = search_path()
        source = load_source(str(fit.body["source"]), str(fit.body["source_version"]), folders).value
        mwebv = float(fit.body.get("mwebv") or 0.0)
        if mwebv > 0:
            model = sncosmo.Model(source, effects=[sncosmo.CCM89Dust()], effect_names=["mw"], effect_frames=["obs"])
            model.set(mwebv=mwebv)
        else:
            model = sncosmo.Model(source)
        model.set(**{k: v for k, v in fit.body["parameters"].items() if k in model.param_names})
        t0 = float(fit.body["parameters"]["t0"])
        times = np.linspace(max(t0 - 20, model.mintime()), min(t0 + 50, model.maxtime()), samples)
        magsystem = load_magsystem("ab", folders).value
        curves = []
        for band in sorted({p["band"] for p in points}):
            bandpass = load_bandpass(band, folders).value
            if bandpass.minwave() < model.minwave() or bandpass.maxwave() > model.maxwave():
                continue
            flux = model.bandflux(bandpass, times, zp=25.0, zpsys=magsystem)
            curves.append({"band": band, "unit": MODEL_UNIT, "result": result_id, "time": times.tolist(),
                           "flux": [float(f) if math.isfinite(f) else None for f in flux]})
        return curves
    except (LookupError, OSError, ValueError, KeyError, TypeError):
        return []
