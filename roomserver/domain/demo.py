"""Demo data for the embedded default: the agency, the four county offices, one account each.

Passwords are generated when the accounts are made and returned once so the
caller can print them; they are never stored in clear or in the repository.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..store import Tx
from .auth import generate_password, hash_password

DEPARTMENTS: list[tuple[str, str, str]] = [
    ("agentur", "Agentur für Arbeit", "agency"),
    ("auslaenderbehoerde", "Ausländerbehörde", "county"),
    ("jobcenter", "Jobcenter", "county"),
    ("sozialamt", "Sozialamt", "county"),
    ("jugend-bildung", "Amt für Jugend und Bildung", "county"),
]

# username, display name, role, department
ACCOUNTS: list[tuple[str, str, str, str | None]] = [
    ("beratung", "Beraterin (Demo)", "counsellor", "agentur"),
    ("abh", "Expertin Ausländerbehörde (Demo)", "expert", "auslaenderbehoerde"),
    ("jobcenter", "Experte Jobcenter (Demo)", "expert", "jobcenter"),
    ("sozialamt", "Expertin Sozialamt (Demo)", "expert", "sozialamt"),
    ("jugend", "Experte Jugend und Bildung (Demo)", "expert", "jugend-bildung"),
    ("dolmetsch", "Dolmetscherin (Demo)", "interpreter", None),
    ("leitstand", "Betrieb (Demo)", "operator", None),
    ("admin", "Administration (Demo)", "admin", None),
]


# The demo interpreter's languages, German Sign Language among them.
INTERPRETER_LANGUAGES = {"dolmetsch": {"dgs", "ar", "fa", "tr", "uk", "ru"}}


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    password: str


def seed(store: Tx, now: int, *, reset_passwords: bool = False) -> list[DemoLogin]:
    """Create what is missing of the demo data; return the passwords it set (once).

    A unit of work: ``store.blocking.write(partial(seed, now=now))`` (first start, command line).
    """
    for dept_id, name, kind in DEPARTMENTS:
        if store.directory.department(dept_id) is None:
            store.directory.add_department(dept_id, name, kind, now)
    logins = []
    for username, display, role, dept in ACCOUNTS:
        account = store.directory.by_username(username)
        if account is None:
            password = generate_password()
            account = store.directory.add_account(username=username, display_name=display, role=role,
                                                  department_id=dept, password_hash=hash_password(password), now=now)
            if username in INTERPRETER_LANGUAGES:
                store.directory.set_languages(account.id, INTERPRETER_LANGUAGES[username])
            logins.append(DemoLogin(username, role, password))
        elif reset_passwords:
            password = generate_password()
            store.directory.set_password_hash(account.id, hash_password(password))
            store.sessions.delete_for_account(account.id)
            logins.append(DemoLogin(username, role, password))
    if logins:
        store.audit.append(at=now, actor="system", action="demo.seeded", detail={"accounts": len(logins)})
    return logins
