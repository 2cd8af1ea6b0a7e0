"""What the store refuses, each with the HTTP status the API answers it with."""

from __future__ import annotations


class ReviewError(ValueError):
    status = 400


class NotFound(ReviewError):
    status = 404


class Conflict(ReviewError):
    """The call changed since the reviewer loaded it (another review was saved): reload, then decide again."""

    status = 409


class Mismatch(ReviewError):
    """Verdicts that do not fit the scorecard the call was scored with (a deduction, item, turn or span it does not
    have): a conflict with the call's state, like a stale revision — reload the call."""

    status = 409


class Leased(ReviewError):
    """Another reviewer holds the call's lease."""

    status = 423
