"""Query parameters as strict pydantic models: one class per route's query is both the parser (a 400 naming the
field) and the OpenAPI document's description of it (:func:`query_schema`), so the two cannot disagree."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

# A day that exists, from 1970-01-01 to 2099-12-31, ASCII digits only (\d would take full-width ones): the OpenAPI
# document states exactly what the server reads, so 2026-02-30 and 2026-02-29 are refused by the pattern itself.
_YEAR = "(?:19[7-9][0-9]|20[0-9]{2})"
_LEAP_YEAR = "(?:19(?:7[26]|8[048]|9[26])|20(?:[02468][048]|[13579][26]))"
DAY_PATTERN = (rf"^(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
               rf"|02-(?:0[1-9]|1[0-9]|2[0-8]))|{_LEAP_YEAR}-02-29)$")

Day = Annotated[str, Field(pattern=DAY_PATTERN, description="a day, YYYY-MM-DD"), AfterValidator(date.fromisoformat)]
Flag = Literal["true", "false"]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Score = Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]


class QueryError(ValueError):
    """A query parameter the route does not take as given; the message names it."""


class StrictQuery(BaseModel):
    # Parameters a route does not know are refused, not ignored: a misspelt filter would otherwise widen a search.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    @classmethod
    def parse(cls, params) -> StrictQuery:
        """From a Starlette ``QueryParams``; a parameter given twice is refused (which one would count?)."""
        repeated = [k for k in params if len(params.getlist(k)) > 1]
        if repeated:
            raise QueryError(f"{repeated[0]}: given more than once")
        try:
            return cls.model_validate(dict(params))
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "query"
            message = "not a parameter of this route" if first["type"] == "extra_forbidden" else first["msg"]
            raise QueryError(f"{where}: {message}") from None


def query_schema(model: type[BaseModel]) -> dict[str, dict]:
    """name → JSON Schema of each query parameter of ``model`` (optional ones without their null branch: a query
    parameter is left out, never null), as serving/openapi.py's Operation takes them."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    out = {}
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
        if branches:
            prop.update(branches[0])
        prop.pop("title", None)
        if prop.get("default") is None:
            prop.pop("default", None)
        if name in schema.get("required", ()):
            prop["x-required"] = True
        out[name] = prop
    return out


def ecma(pattern: str) -> str:
    """A Python pattern as JSON Schema's (ECMA 262) dialect: no named groups."""
    return re.sub(r"\?P<\w+>", "", pattern)


__all__ = ["DAY_PATTERN", "Day", "Flag", "Name", "QueryError", "Score", "StrictQuery", "ecma", "query_schema"]
