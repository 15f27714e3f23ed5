"""The repositories bound to one connection: what a unit of work is given.

A unit of work is a plain function ``fn(tx) -> result``; the backend runs it in
a thread, in one transaction when it writes, so several repository calls in one
unit commit together (a join spends its token, marks the room live and audits
in one commit).
"""

from __future__ import annotations

from .audit import AuditLog
from .calls import CallLog
from .consents import ConsentLog
from .directory import Directory
from .invitemail import InviteEmails
from .ledger import TokenLedger
from .livestate import LiveState
from .oidclogins import OidcLogins
from .outbox import Outbox
from .reports import ReportQueries
from .retention import RecordRetention
from .rooms import RoomRepository
from .sessions import SessionStore
from .shortlinks import ShortLinks
from .signins import SignIns
from .sql import Sql

REPOSITORY_CLASSES = {"rooms": RoomRepository, "tokens": TokenLedger, "directory": Directory,
                      "sessions": SessionStore, "audit": AuditLog, "calls": CallLog, "consents": ConsentLog,
                      "retention": RecordRetention, "live": LiveState,
                      "shortlinks": ShortLinks, "oidclogins": OidcLogins, "signins": SignIns,
                      "reports": ReportQueries, "outbox": Outbox, "invitemails": InviteEmails}
REPOSITORIES = tuple(REPOSITORY_CLASSES)


class Tx:
    """Every repository over one connection (``Sql``)."""

    __slots__ = ("sql", *REPOSITORIES)

    def __init__(self, sql: Sql) -> None:
        self.sql = sql
        self.rooms = RoomRepository(sql)
        self.tokens = TokenLedger(sql)
        self.directory = Directory(sql)
        self.sessions = SessionStore(sql)
        self.audit = AuditLog(sql)
        self.calls = CallLog(sql)
        self.consents = ConsentLog(sql)
        self.retention = RecordRetention(sql)
        self.live = LiveState(sql)
        self.shortlinks = ShortLinks(sql)
        self.oidclogins = OidcLogins(sql)
        self.signins = SignIns(sql)
        self.reports = ReportQueries(sql)
        self.outbox = Outbox(sql)
        self.invitemails = InviteEmails(sql)

    def is_empty(self) -> bool:
        """No account and no room yet: a first start."""
        row = self.sql.execute("SELECT (SELECT COUNT(*) FROM accounts) + (SELECT COUNT(*) FROM rooms) AS n").fetchone()
        return int(row["n"]) == 0

    def ping(self) -> bool:
        return self.sql.execute("SELECT 1 AS one").fetchone() is not None
