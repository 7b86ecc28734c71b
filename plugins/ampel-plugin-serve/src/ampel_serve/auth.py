"""Who is asking: a request's token -> its `Team`, or 401 / 429.

Every request carries a token, in ``Authorization: Bearer T`` or, for the web view, in the cookie
``ampel_token`` (set HttpOnly, SameSite=Strict by the login form). Tokens are kept hashed
(`ampel_serve.teams`); a token that is unknown, revoked or past its expiry is refused with 401,
one over its rate limit with 429 and a ``Retry-After`` header (seconds).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

__all__ = ["COOKIE", "CurrentTeam", "RateLimiter", "Team", "bearer_token", "current_team"]

COOKIE = "ampel_token"


@dataclass(frozen=True)
class Team:
    """A team as the API sees it."""

    name: str
    rights: frozenset[str]  # datapoint access tags the team may see, e.g. {"ZTF_PUB"}
    channels: frozenset[str]  # the channels of this team's jobs (channel names are unique across teams)


class RateLimiter:
    """Requests per token in a sliding window of ``window`` seconds (in this process)."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, token_id: str, limit: int, now: float | None = None) -> float:
        """Count one request of ``token_id``; 0 when allowed, else the seconds until it would be."""
        now = time.monotonic() if now is None else now
        with self._lock:
            seen = self._seen.setdefault(token_id, deque())
            while seen and seen[0] <= now - self.window:
                seen.popleft()
            if len(seen) >= limit:
                return seen[0] + self.window - now
            seen.append(now)
            return 0.0


def bearer_token(request: Request) -> str | None:
    """The token of ``request``: from ``Authorization: Bearer T``, else the ``ampel_token`` cookie."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None
    return request.cookies.get(COOKIE) or None


def current_team(request: Request) -> Team:
    """FastAPI dependency: the team of the request's token. 401 for a missing, invalid, revoked or
    expired token; 429 with ``Retry-After`` over the token's rate limit."""
    from ampel_serve.teams import TeamBook, TokenRefused

    token = bearer_token(request)
    if token is None:
        raise HTTPException(401, "a token is required (Authorization: Bearer TOKEN)", {"WWW-Authenticate": "Bearer"})
    book: TeamBook = request.app.state.teams
    try:
        token_id, limit, team = book.authenticate(token)
    except TokenRefused as error:
        raise HTTPException(401, str(error), {"WWW-Authenticate": "Bearer"}) from None
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.check(token_id, limit)
    if wait > 0:
        raise HTTPException(429, f"rate limit of {limit} requests per {limiter.window:g} s reached",
                            {"Retry-After": str(max(1, math.ceil(wait)))})
    request.state.team = team
    return team


CurrentTeam = Annotated[Team, Depends(current_team)]
"""An endpoint parameter ``team: CurrentTeam`` is the request's authenticated team."""
