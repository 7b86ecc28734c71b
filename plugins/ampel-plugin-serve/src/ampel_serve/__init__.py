"""AMPEL's live instance: ``ampel serve`` ingests a stream with the teams' uploaded channels, runs
their T2 and T3, and serves the read API and web view to teams authenticated by tokens.

- `ampel_serve.app`: the ASGI app (`create_app`, `ServeSettings`, `get_store`);
- `ampel_serve.auth`: `Team` and the `current_team` dependency (tokens, rate limits);
- `ampel_serve.teams`: teams and their hashed tokens in the store's database;
- `ampel_serve.jobs`: uploaded jobs (validation, versions, activation, replay);
- `ampel_serve.service`: the ingest loop, T2 workers and T3 schedules around the app.
"""

__all__: list[str] = []
