"""A Python client of a live instance's read API (``ampel serve``; reference: docs/api.md), for
notebooks and scripts: tables come back as astropy Tables, documents as dicts.

    >>> from ampel_core.client import Client
    >>> client = Client("http://127.0.0.1:8000", token="0123abcd.…")
    >>> client.light_curve("ZTF21abiuvdk")            # Table: time, band, flux, flux_err, zp, ...
    >>> client.cone(0.8, 16.1, radius=0.1)            # Table: stock, name, ra, dec, distance, updated
    >>> client.latest(unit="T2LightCurveSummary", field="ndet", min=10)
    >>> client.provenance(42)                         # result -> trace -> state -> datapoints -> ...

Only the standard library (urllib) and astropy: no web framework. Tables travel as VOTables, so
column types and missing values (masked) survive. Errors are `ClientError`s that say what the
server answered (401: the token; 404: not among what the team may see; 429: the rate limit).
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from ampel_core.errors import AmpelError

if TYPE_CHECKING:
    from astropy.table import Table

__all__ = ["Client", "ClientError"]

PAGE = 1000  # rows per request when a call pages through a table


class ClientError(AmpelError):
    """The server refused a request or could not be reached; ``status`` is the HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Client:
    """The read API of the live instance at ``url`` (e.g. ``http://127.0.0.1:8000``) with a team's ``token``."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ClientError(f"not an http(s) URL: {url!r} (e.g. http://127.0.0.1:8000)")
        self.url, self.timeout = url.rstrip("/"), timeout
        self._token = token

    def __repr__(self) -> str:  # never the token
        return f"Client({self.url!r})"

    # --- plumbing --------------------------------------------------------------------------
    def get(self, path: str, **params: Any) -> tuple[bytes, dict[str, str]]:
        """The body and headers of ``GET /api{path}?params`` (parameters that are None left out)."""
        query = urllib.parse.urlencode({k: _text(v) for k, v in params.items() if v is not None})
        address = f"{self.url}/api{path}" + (f"?{query}" if query else "")
        request = urllib.request.Request(address, headers={"Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.read(), {k.lower(): v for k, v in answer.headers.items()}
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read()).get("detail")
            except ValueError:
                detail = None
            retry = f" (retry after {error.headers.get('Retry-After')} s)" if error.code == 429 else ""
            raise ClientError(f"GET {path}: {error.code} {detail or error.reason}{retry}", error.code) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ClientError(f"cannot reach {self.url}: {reason}") from None

    def document(self, path: str, **params: Any) -> Any:
        return json.loads(self.get(path, **params)[0])

    def table(self, path: str, params: dict[str, Any] | None = None, paged: bool = True,
              limit: int | None = None) -> Table:
        """The rows of a tabular endpoint as one Table; a ``paged`` one is read page after page up
        to ``limit`` rows (None: all of them)."""
        from astropy.io.votable import parse_single_table
        from astropy.table import vstack

        pieces, offset = [], 0
        while True:
            query = {**(params or {}), "format": "votable"}
            if paged:
                query.update(limit=PAGE if limit is None else min(PAGE, limit - offset), offset=offset or None)
            body, headers = self.get(path, **query)
            pieces.append(parse_single_table(io.BytesIO(body)).to_table())
            following = headers.get("x-next-offset")
            if not paged or following is None:
                break
            offset = int(following)
            if limit is not None and offset >= limit:
                break
        return pieces[0] if len(pieces) == 1 else vstack(pieces, metadata_conflicts="silent")

    # --- the API ---------------------------------------------------------------------------
    def channels(self) -> list[dict[str, Any]]:
        """The team's channels: ``[{"channel", "stocks"}]``."""
        found: list[dict[str, Any]] = self.document("/channels")
        return found

    def stock(self, stock: str | int, extra: bool = False) -> dict[str, Any]:
        """A stock (name or id) with its datapoints, states, the team's results and journal."""
        found: dict[str, Any] = self.document(f"/stocks/{_segment(stock)}", extra=extra or None)
        return found

    def light_curve(self, stock: str | int, upper_limits: bool = True) -> Table:
        """The stock's datapoints the team may see, by time: id, time [MJD], band, flux, flux_err,
        zp, zpsys, mag, mag_err, upper_limit, forced, tags (the columns sncosmo.fit_lc takes)."""
        table = self.table(f"/stocks/{_segment(stock)}/lightcurve", {"upper_limits": upper_limits}, paged=False)
        if "time" in table.colnames:
            table["time"].unit = "d"
        return table

    def results(self, stock: str | int, unit: str | None = None) -> Table:
        """The team's T2 results on the stock, one row each, body fields flattened (``body.fit.z``)."""
        return self.table(f"/stocks/{_segment(stock)}/results", {"unit": unit}, paged=False)

    def cone(self, ra: float, dec: float, radius: float, limit: int | None = None) -> Table:
        """The team's stocks within ``radius`` degrees (at most 5) of (ra, dec) [degrees], nearest first."""
        return self.table("/cone", {"ra": ra, "dec": dec, "radius": radius}, limit=limit)

    def latest(self, channel: str | None = None, unit: str | None = None, field: str | None = None,
               min: float | None = None, max: float | None = None, equals: str | None = None,
               limit: int | None = 100) -> Table:
        """The team's most recently updated stocks (of ``channel``), optionally only those whose
        newest ``unit`` result has ``field`` within [min, max] or equal to ``equals``."""
        return self.table("/stocks", {"channel": channel, "unit": unit, "field": field, "min": min, "max": max,
                                      "equals": equals}, limit=limit)

    def provenance(self, result: int) -> dict[str, Any]:
        """The provenance chain of a result: result, trace, state, datapoints, alerts, runs."""
        found: dict[str, Any] = self.document(f"/results/{int(result)}/provenance")
        return found


def _segment(value: str | int) -> str:
    return urllib.parse.quote(str(value), safe="")


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
