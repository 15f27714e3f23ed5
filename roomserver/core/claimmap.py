"""From an identity provider's claims to a staff role: the ``roles`` table of an ``[oidc.<name>]`` provider.

Pure: no I/O. The provider's claim (``groups``, ``roles``, ``realm_access.roles`` …) holds
values; the table maps values to roles. The first entry (in table order) whose value the
person has decides the role; an interpreter's languages are collected from every matching
interpreter entry plus an optional languages claim. A person matching no entry gets no role:
nobody is let in with a default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

_ROLES = ("counsellor", "expert", "interpreter", "operator", "admin")
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_LANG = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?")


class RoleRuleError(ValueError):
    """An entry of the roles table that names no role the server knows."""


@dataclass(frozen=True)
class RoleRule:
    value: str  # the claim value
    role: str
    department_id: str | None = None  # experts
    languages: frozenset[str] = frozenset()  # interpreters


@dataclass(frozen=True)
class Mapped:
    """What the claims make of a person."""

    role: str
    department_id: str | None
    languages: frozenset[str]
    matched: str  # the claim value that decided the role


def parse_rules(table: Mapping[str, str]) -> list[RoleRule]:
    """``{"beratung": "counsellor", "abh": "expert:auslaenderbehoerde", "sprach-ar": "interpreter:ar+tr"}``."""
    rules = []
    for value, target in table.items():
        role, _, arg = target.strip().partition(":")
        if role not in _ROLES:
            raise RoleRuleError(f"{value!r} = {target!r}: the role must be one of {', '.join(_ROLES)}")
        if role == "expert":
            if not _ID.fullmatch(arg):
                raise RoleRuleError(f"{value!r} = {target!r}: an expert needs a department, 'expert:<department id>'")
            rules.append(RoleRule(value, role, department_id=arg))
        elif role == "interpreter":
            langs = frozenset(part.strip().lower() for part in arg.split("+") if part.strip()) if arg else frozenset()
            bad = [lang for lang in langs if not _LANG.fullmatch(lang)]
            if bad:
                raise RoleRuleError(f"{value!r} = {target!r}: {bad[0]!r} is not a language code like 'ar' or 'dgs'")
            rules.append(RoleRule(value, role, languages=langs))
        else:
            if arg:
                raise RoleRuleError(f"{value!r} = {target!r}: the role {role} takes nothing after ':'")
            rules.append(RoleRule(value, role))
    return rules


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at ``path``; dots reach into objects (``realm_access.roles``). None when absent."""
    if path in claims:
        return claims[path]
    current: Any = claims
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


def claim_values(claims: Mapping[str, Any], path: str) -> list[str]:
    """A claim as a list of strings: a string is one value, a list keeps its strings, anything else none."""
    found = claim(claims, path)
    if isinstance(found, str):
        return [found]
    if isinstance(found, (list, tuple)):
        return [v for v in found if isinstance(v, str)]
    return []


def map_claims(claims: Mapping[str, Any], rules: list[RoleRule], *, roles_claim: str,
               languages_claim: str = "") -> Mapped | None:
    """The role the claims give, or None when no rule matches (the person is refused)."""
    have = set(claim_values(claims, roles_claim))
    matching = [rule for rule in rules if rule.value in have]
    if not matching:
        return None
    first = matching[0]
    languages: frozenset[str] = frozenset()
    if first.role == "interpreter":
        langs = set()
        for rule in matching:
            if rule.role == "interpreter":
                langs |= rule.languages
        if languages_claim:
            langs |= {v.strip().lower() for v in claim_values(claims, languages_claim) if _LANG.fullmatch(v.strip().lower())}
        languages = frozenset(langs)
    return Mapped(first.role, first.department_id, languages, first.value)
