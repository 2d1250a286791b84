"""URL converters: an `<int:…>` in a route is a row id, so it matches only what a row id can be."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map

from engine.db import MAX_ID


class RowIdConverter(IntegerConverter):
    """`<int:…>` limited to PostgreSQL's `integer` (1 … 2**31 - 1): a larger number cannot name a
    row, and handed to the database it fails the query ("integer out of range") instead of finding
    nothing. Outside the range the route does not match: 404, as for any unknown id."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def register(url_map: Map) -> None:
    """Before any route is added: rules bind their converter when they are added to the map."""
    url_map.converters["int"] = RowIdConverter
