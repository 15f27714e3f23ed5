"""The store's two failures: it cannot be used as configured, or it cannot be reached right now."""

from __future__ import annotations

from ..core.errors import RoomServerError


class StoreError(Exception):
    """The database cannot be opened, is at the wrong schema or cannot be migrated; one line says why."""


class StoreUnavailable(RoomServerError):
    """The database did not answer (down, unreachable, locked too long): the request may be retried."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("store_unavailable", "The database cannot be reached right now; try again shortly.", 503)
        self.detail = detail


class StoreConflict(RoomServerError):
    """A write broke a uniqueness or reference rule (two people creating the same thing at once)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("conflict", "This conflicts with data that exists already.", 409)
        self.detail = detail
