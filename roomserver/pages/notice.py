"""The citizens' data notice: what it says, and the version a consent names.

Every sentence is a catalog text (German first, translated into the citizen
languages); what differs between deployments comes from the settings: the
controller, the data protection officer and the supervisory authority
(``[privacy]``), the two retention limits, and whether a TURN relay is
configured (only then does the notice speak of one).

The version is derived from what a German reader sees: the German texts with
the settings filled in. Change a German sentence, a contact or a retention
limit and the version changes by itself — so consent is asked again, and the
``consents`` table says which version each consent was given to. The edition
number is for people (bump it with a rewrite); the digest is what guarantees it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .. import i18n
from ..config import Settings

EDITION = 2


@dataclass(frozen=True)
class Text:
    """One catalog text with its values; rendered in the page's language."""

    key: str
    values: dict[str, object] = field(default_factory=dict)

    def render(self, lang: str) -> str:
        return i18n.translate(lang, self.key, **self.values)


@dataclass(frozen=True)
class Fact:
    """A labelled line of the "who is responsible" part: catalog texts or the controller's own words."""

    label: str
    lines: tuple[Text | str, ...]


@dataclass(frozen=True)
class Notice:
    items: tuple[Text, ...]
    stored: tuple[Text, ...]
    closing: tuple[Text, ...]
    facts: tuple[Fact, ...]
    version: str

    def lines(self, lang: str) -> list[str]:
        """Every sentence in reading order, as the page shows it in ``lang`` (for the version, and tests)."""
        out = [t.render(lang) for t in (Text("join.notice.title"), *self.items, Text("join.notice.stored"),
                                        *self.stored, *self.closing)]
        for fact in self.facts:
            out.append(i18n.translate(lang, fact.label))
            out += [line.render(lang) if isinstance(line, Text) else line for line in fact.lines]
        out.append(i18n.translate(lang, "join.notice.question"))
        return out


def build(settings: Settings) -> Notice:
    p = settings.privacy
    items = [Text("join.notice.record"), Text("join.notice.people"), Text("join.notice.direct")]
    if settings.ice.turn_urls:
        items.append(Text("join.notice.relay"))
    items += [Text("join.notice.server"), Text("join.notice.test"), Text("join.notice.name")]
    stored = (Text("join.notice.stored.invite"), Text("join.notice.stored.appointment"),
              Text("join.notice.stored.consent"), Text("join.notice.stored.log"), Text("join.notice.stored.figures"))
    if settings.mail.smtp_host:  # e-mailed invites: the address until the appointment is over
        stored += (Text("join.notice.stored.email"),)
    closing = (Text("join.notice.retention", {"log_days": settings.audit.retention_days,
                                              "record_days": p.records_retention_days}),
               Text("join.notice.voluntary"), Text("join.notice.withdraw"), Text("join.notice.scope"))
    facts = (
        Fact("join.notice.controller", tuple(x for x in (p.controller_name, p.controller_address,
                                                         p.controller_contact) if x)),
        Fact("join.notice.dpo", tuple(x for x in (p.dpo_name, p.dpo_contact) if x)),
        Fact("join.notice.purpose_label", (Text("join.notice.purpose"),)),
        Fact("join.notice.basis_label", (p.legal_basis,) if p.legal_basis else (Text("join.notice.basis"),)),
        # Isolated (FSI … PDI): a German name inside an Arabic or Farsi sentence keeps its own direction.
        Fact("join.notice.rights_label", (Text("join.notice.rights", {"authority": f"\u2068{p.authority}\u2069"}),)),
    )
    draft = Notice(tuple(items), stored, closing, facts, "")
    digest = hashlib.sha256("\n".join(draft.lines(i18n.DEFAULT)).encode("utf-8")).hexdigest()[:8]
    return Notice(tuple(items), stored, closing, facts, f"join-notice-{EDITION}.{digest}")
