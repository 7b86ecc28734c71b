"""Teams and their tokens, kept in the store's database (`ampel_serve._db`).

A token is shown once, when it is made, and kept only as its sha256 (tokens are 256 random bits,
so a plain hash cannot be reversed by guessing). Each token has an id (the part before the dot,
shown in listings and used for its rate limit), an optional expiry, and a rate limit in requests
per minute. A team's *rights* are the datapoint access tags it may see (``ZTF_PUB``, ``ZTF_PRIV``,
``LSST``...); its channels are those of its uploaded jobs (`ampel_serve.jobs`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass

import orjson
from ampel_core.errors import AmpelError

from ampel_serve._db import ServeDB
from ampel_serve.auth import Team

__all__ = ["DEFAULT_RATE_LIMIT", "TEAM_NAME", "TeamBook", "TeamInfo", "TokenRefused", "hash_token"]

DEFAULT_RATE_LIMIT = 600  # requests per minute and token
TEAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_RIGHT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_CACHE_SECONDS = 2.0  # how long a checked token is trusted without asking the database again


class TokenRefused(AmpelError):
    """A token that is unknown, revoked or expired (the message says which, never whose)."""


@dataclass(frozen=True)
class TeamInfo:
    name: str
    rights: tuple[str, ...]
    created: float
    tokens: tuple[tuple[str, float | None, int, bool], ...]  # (id, expires, rate limit, revoked)
    channels: tuple[str, ...]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _secret_key(team: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", team.upper()) + "_"


def _rights(rights: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> list[str]:
    bad = [right for right in rights if not _RIGHT.fullmatch(right)]
    if bad:
        raise AmpelError(f"invalid right(s) {bad}: a right is a datapoint tag such as ZTF_PUB (letters, digits, _.:-)")
    return sorted(set(rights))


class TeamBook:
    """Teams and tokens of the store at ``url``."""

    def __init__(self, url: str) -> None:
        self.db = ServeDB(url)
        self._cache: dict[str, tuple[float, str, int, Team, float | None]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    # teams ---------------------------------------------------------------------------------------
    def add_team(self, name: str, rights: list[str], expires_days: float | None = None,
                 rate_limit: int = DEFAULT_RATE_LIMIT) -> str:
        """Create team ``name`` with ``rights`` and its first token; return the token (shown once)."""
        if not TEAM_NAME.fullmatch(name):
            raise AmpelError(f"invalid team name {name!r}: letters, digits and _.- (at most 64, starting with a "
                             "letter or digit)")
        with self.db.transaction() as cursor:
            if cursor.execute("SELECT 1 FROM serve_teams WHERE name = ?", (name,)):
                raise AmpelError(f"team {name!r} exists; add a token with `ampel serve team token {name}`")
            # each team's secrets are the variables AMPEL_PUSH_<TEAM>_...: no prefix may hold another
            key = _secret_key(name)
            for (other,) in cursor.execute("SELECT name FROM serve_teams"):
                if key.startswith(_secret_key(other)) or _secret_key(other).startswith(key):
                    raise AmpelError(f"team name {name!r} is too close to team {other!r}: their push secrets "
                                     f"(AMPEL_PUSH_{key}... and AMPEL_PUSH_{_secret_key(other)}...) would overlap")
            cursor.execute("INSERT INTO serve_teams (name, rights, created) VALUES (?, ?, ?)",
                           (name, orjson.dumps(_rights(rights)).decode(), time.time()))
        return self.new_token(name, expires_days, rate_limit)

    def new_token(self, team: str, expires_days: float | None = None, rate_limit: int = DEFAULT_RATE_LIMIT) -> str:
        """A new token of ``team``; return it (it is kept only hashed)."""
        if rate_limit < 1:
            raise AmpelError(f"the rate limit is requests per minute, at least 1; got {rate_limit}")
        if expires_days is not None and expires_days <= 0:
            raise AmpelError(f"a token's lifetime must be positive; got {expires_days} days")
        token_id = secrets.token_hex(6)
        token = f"{token_id}.{secrets.token_urlsafe(32)}"
        now = time.time()
        expires = now + expires_days * 86400 if expires_days is not None else None
        with self.db.transaction() as cursor:
            if not cursor.execute("SELECT 1 FROM serve_teams WHERE name = ?", (team,)):
                raise AmpelError(f"no team {team!r}; see `ampel serve team list`")
            cursor.execute("INSERT INTO serve_tokens (id, team, hash, created, expires, rate_limit, revoked) "
                           "VALUES (?, ?, ?, ?, ?, ?, 0)", (token_id, team, hash_token(token), now, expires, rate_limit))
        return token

    def revoke(self, token_id: str) -> None:
        with self.db.transaction() as cursor:
            if not cursor.execute("SELECT 1 FROM serve_tokens WHERE id = ?", (token_id,)):
                raise AmpelError(f"no token with id {token_id!r}; see `ampel serve team list`")
            cursor.execute("UPDATE serve_tokens SET revoked = 1 WHERE id = ?", (token_id,))
        with self._lock:
            self._cache.clear()

    def remove_team(self, name: str) -> None:
        """Remove team ``name`` and its tokens; refused while it has jobs that are not removed."""
        with self.db.transaction() as cursor:
            if not cursor.execute("SELECT 1 FROM serve_teams WHERE name = ?", (name,)):
                raise AmpelError(f"no team {name!r}; see `ampel serve team list`")
            jobs = cursor.execute("SELECT DISTINCT name FROM serve_jobs WHERE team = ? AND status != 'removed'", (name,))
            if jobs:
                raise AmpelError(f"team {name!r} still has jobs {sorted(j[0] for j in jobs)}; remove them first")
            cursor.execute("DELETE FROM serve_tokens WHERE team = ?", (name,))
            cursor.execute("DELETE FROM serve_teams WHERE name = ?", (name,))
        with self._lock:
            self._cache.clear()

    def teams(self) -> list[TeamInfo]:
        found = []
        for name, rights, created in self.db.execute("SELECT name, rights, created FROM serve_teams ORDER BY name"):
            tokens = self.db.execute("SELECT id, expires, rate_limit, revoked FROM serve_tokens WHERE team = ? "
                                     "ORDER BY created, id", (name,))
            found.append(TeamInfo(name, tuple(orjson.loads(rights)), created,
                                  tuple((t[0], t[1], int(t[2]), bool(t[3])) for t in tokens), self._channels(name)))
        return found

    def team(self, name: str) -> Team:
        rows = self.db.execute("SELECT rights FROM serve_teams WHERE name = ?", (name,))
        if not rows:
            raise AmpelError(f"no team {name!r}")
        return Team(name, frozenset(orjson.loads(rows[0][0])), frozenset(self._channels(name)))

    def _channels(self, team: str) -> tuple[str, ...]:
        return tuple(row[0] for row in self.db.execute(
            "SELECT channel FROM serve_channels WHERE team = ? ORDER BY channel", (team,)))

    def forget_cached(self) -> None:
        """Drop remembered tokens (after a team's channels changed)."""
        with self._lock:
            self._cache.clear()

    # tokens --------------------------------------------------------------------------------------
    def authenticate(self, token: str) -> tuple[str, int, Team]:
        """(token id, rate limit, team) of a valid token; TokenRefused otherwise."""
        hashed = hash_token(token)
        now = time.time()
        with self._lock:
            cached = self._cache.get(hashed)
        if cached is not None and cached[0] > now:
            _, token_id, limit, team, expires = cached
            if expires is not None and expires <= now:
                raise TokenRefused("the token has expired")
            return token_id, limit, team
        rows = self.db.execute("SELECT id, team, expires, rate_limit, revoked FROM serve_tokens WHERE hash = ?",
                               (hashed,))
        if not rows:
            raise TokenRefused("invalid token")
        token_id, team_name, expires, limit, revoked = rows[0]
        if revoked:
            raise TokenRefused("the token has been revoked")
        if expires is not None and expires <= now:
            raise TokenRefused("the token has expired")
        team = self.team(team_name)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[hashed] = (now + _CACHE_SECONDS, token_id, int(limit), team, expires)
        return token_id, int(limit), team
