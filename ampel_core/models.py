"""The data model: alerts, datapoints, stocks, states, results, traces, runs and journal entries.

These are plain records, frozen except `DataPoint` (see there). The store persists them; units
receive read-only views of them (`ampel_core.views`). Conventions for the standard photometry
fields of a `DataPoint`:

- ``time``: Modified Julian Date of the exposure mid-point (days).
- ``band``: an sncosmo bandpass name (``ztfg``, ``lsstr``, ``bessellb`` ...).
- ``flux``, ``flux_err``: flux in the ``zp``/``zpsys`` magnitude system, i.e.
  ``mag = zp - 2.5 log10(flux)`` where ``flux > 0``; ``flux`` is ``None`` for an upper limit, whose
  ``flux_err`` is the 1-sigma noise flux derived from the limiting magnitude. A difference flux
  may be negative (ZTF ``isdiffpos`` = ``f``, a negative Rubin flux): the source is fainter than
  in the reference image, which is not a brightening.
- ``mag``, ``mag_err``: the survey's magnitude and error; for an upper limit ``mag`` is the
  (5-sigma) limiting magnitude and ``mag_err`` is ``None``. For a negative flux ``mag`` is not a
  brightness (ZTF: the magnitude of ``|flux|``; Rubin: ``None``): use flux, or check ``flux > 0``.
- ``upper_limit``: True for a non-detection.

Forced photometry carries the tag ``forced``; records without photometry (e.g. an object summary)
have an empty ``band`` and no flux.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, overload

__all__ = ["PHOTOMETRY_FIELDS", "Alert", "DataPoint", "JournalEntry", "LazyDataPoints", "LinkKind", "Result", "Run",
           "State", "Stock", "Trace", "content_id"]

PHOTOMETRY_FIELDS = ("time", "band", "flux", "flux_err", "zp", "zpsys", "mag", "mag_err", "upper_limit")


@dataclass(slots=True)
class DataPoint:
    """One measurement of one stock; immutable once stored.

    ``id`` is the survey's own id where it has one (ZTF ``candid``, Rubin ``diaSourceId``), or
    `content_id` of the measurement otherwise. ``tags`` drive access rights (e.g. ``ZTF_PUB``) and
    kinds (``forced``, ``upper_limit``); ``extra`` holds the survey's raw fields.

    Not a frozen dataclass, unlike the other records: formats build hundreds per alert, and the
    ``__init__`` of a frozen one (``object.__setattr__`` per field) costs four times as much (8 % of
    the whole T0 on ZTF alerts with long histories). Treat instances as read-only; the store
    refuses changes to stored datapoints.
    """

    id: int
    stock: int
    time: float
    band: str
    flux: float | None
    flux_err: float | None
    zp: float = 25.0
    zpsys: str = "ab"
    mag: float | None = None
    mag_err: float | None = None
    upper_limit: bool = False
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_detection(self) -> bool:
        """A measured flux from a detection: not an upper limit, not forced photometry (tag
        ``forced``), and with a band (object-level records such as Rubin's diaObject have none)."""
        return not self.upper_limit and bool(self.band) and self.flux is not None and "forced" not in self.tags

    def body(self) -> dict[str, Any]:
        """The stored JSON body: the photometry fields plus ``extra``."""
        return {
            "time": self.time, "band": self.band, "flux": self.flux, "flux_err": self.flux_err,
            "zp": self.zp, "zpsys": self.zpsys, "mag": self.mag, "mag_err": self.mag_err,
            "upper_limit": self.upper_limit, "extra": self.extra,
        }

    @classmethod
    def from_body(cls, id: int, stock: int, tags: tuple[str, ...], body: dict[str, Any]) -> DataPoint:
        return cls(id=id, stock=stock, tags=tuple(tags), **body)


def content_id(*parts: object) -> int:
    """A stable positive 63-bit id from the given parts (for measurements without a survey id)."""
    digest = hashlib.sha256("\x1f".join(map(repr, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class LazyDataPoints(Sequence[DataPoint]):
    """An alert's datapoints whose costly part (e.g. hundreds of upper limits) is built on first
    use, so that alerts every filter rejects on their detections never build it.

    ``detections`` (the trigger first) are built at once and must hold all datapoints of the alert
    for which `DataPoint.is_detection` holds (they may hold others a format builds at once, e.g.
    Rubin diaSources without a band); ``rest`` builds the others when they are needed.
    ``select(known)``, where a format can tell a datapoint's id before building it, builds only
    those of the others whose ids are not in ``known`` (the same datapoints, in the same order, as
    ``rest`` builds, less those): `unknown` then builds only an alert's new history, not what
    earlier alerts of the stock stored.
    """

    __slots__ = ("_all", "_rest", "_select", "detections")

    def __init__(self, detections: list[DataPoint], rest: Callable[[], list[DataPoint]],
                 select: Callable[[Container[int]], list[DataPoint]] | None = None) -> None:
        self.detections = detections
        self._rest: Callable[[], list[DataPoint]] | None = rest
        self._select = select
        self._all: list[DataPoint] | None = None

    def materialize(self) -> list[DataPoint]:
        if self._all is None:
            assert self._rest is not None
            self._all = self.detections + self._rest()
            self._rest = None
        return self._all

    def unknown(self, known: Container[int]) -> list[DataPoint]:
        """The datapoints whose ids are not in ``known``, in order; with ``select`` (and not built
        yet), without building the others."""
        if self._all is not None or self._select is None:
            return [dp for dp in self.materialize() if dp.id not in known]
        return [dp for dp in self.detections if dp.id not in known] + self._select(known)

    def __len__(self) -> int:
        return len(self.materialize())

    def __bool__(self) -> bool:  # without building the rest when there are detections
        return bool(self.detections) or bool(self.materialize())

    @overload
    def __getitem__(self, index: int) -> DataPoint: ...
    @overload
    def __getitem__(self, index: slice) -> list[DataPoint]: ...
    def __getitem__(self, index: int | slice) -> DataPoint | list[DataPoint]:
        if isinstance(index, int) and 0 <= index < len(self.detections):
            return self.detections[index]
        return self.materialize()[index]

    def __iter__(self) -> Iterator[DataPoint]:
        return iter(self.materialize())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return self.materialize() == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable on first use, like a list

    def __reduce__(self) -> tuple[type[list[DataPoint]], tuple[list[DataPoint]]]:
        return list, (self.materialize(),)  # pickled (to or from a worker process) as what it holds

    def __repr__(self) -> str:
        built = "built" if self._all is not None else "not built yet"
        return f"LazyDataPoints({len(self.detections)} detections, the rest {built})"


@dataclass(slots=True)
class Alert:
    """One survey message in survey-neutral form, as an alert format decodes it.

    ``datapoints[0]`` is the measurement that triggered the alert; the rest is history. A format
    may pass `LazyDataPoints` so that the bulk of the history is built only for alerts that need it.
    ``extra`` holds small survey fields filters may use; ``blobs`` holds large binary parts
    (e.g. image cutouts), stored by alert and never copied into datapoints.
    """

    id: int
    stock: int
    stock_name: str
    datapoints: Sequence[DataPoint]
    extra: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    tags: tuple[str, ...] = ()  # added to the stock's tags (e.g. a survey or a solar-system flag)

    @property
    def trigger(self) -> DataPoint:
        """The measurement that triggered the alert."""
        return self.datapoints[0]

    @property
    def detections(self) -> list[DataPoint]:
        """The datapoints that are detections (`DataPoint.is_detection`), trigger first; cheap for
        `LazyDataPoints`, whose other datapoints it does not build."""
        points = self.datapoints
        return [dp for dp in (points.detections if isinstance(points, LazyDataPoints) else points) if dp.is_detection]


@dataclass(frozen=True, slots=True)
class Stock:
    """One astronomical object: survey names, the channels that accepted it and its tags."""

    id: int
    names: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    created: float = 0.0
    updated: float = 0.0


@dataclass(frozen=True, slots=True)
class State:
    """The datapoints of a stock that a channel sees at one moment; ``id`` is `state_id` of them."""

    id: str
    stock: int
    datapoints: tuple[int, ...]


LinkKind = Literal["point", "state", "stock"]


@dataclass(frozen=True, slots=True)
class Result:
    """The output of one T2 unit instance (``trace``) on one link; appended, never overwritten."""

    unit: str
    trace: str
    link_kind: LinkKind
    link: str
    stock: int
    body: dict[str, Any] | None
    status: Literal["ok", "error"] = "ok"
    run: int | None = None
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class Trace:
    """The identity of a configured unit; ``id`` is the sha256 of the canonical JSON of the rest."""

    id: str
    unit: str
    distribution: str
    version: str
    code: str
    resources: dict[str, str]
    config: dict[str, Any]

    def document(self) -> dict[str, Any]:
        """What ``id`` is the hash of."""
        doc = asdict(self)
        del doc["id"]
        return doc


@dataclass(frozen=True, slots=True)
class Run:
    """One execution of a job or worker, with what it ran on."""

    id: int
    job_digest: str
    job: dict[str, Any]
    environment: dict[str, Any]
    started: float
    ended: float | None = None
    status: str = "running"
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One line of a stock's append-only history: who did what, when."""

    stock: int
    tier: int
    action: str
    channel: str | None = None
    trace: str | None = None
    run: int | None = None
    alert: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    time: float = 0.0
