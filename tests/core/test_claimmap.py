"""The roles table of an OpenID Provider: claim values to staff roles, no I/O."""

from __future__ import annotations

import pytest

from roomserver.core.claimmap import RoleRuleError, claim_values, map_claims, parse_rules

RULES = parse_rules({"beratung": "counsellor", "abh": "expert:auslaenderbehoerde", "sprache-ar": "interpreter:ar",
                     "sprache-tr": "interpreter:tr+ku", "admins": "admin", "it": "operator"})


def test_the_first_entry_in_table_order_decides() -> None:
    mapped = map_claims({"groups": ["it", "beratung"]}, RULES, roles_claim="groups")
    assert mapped is not None and mapped.role == "counsellor" and mapped.matched == "beratung"


def test_an_expert_gets_the_department_of_the_entry() -> None:
    mapped = map_claims({"groups": "abh"}, RULES, roles_claim="groups")
    assert mapped is not None and (mapped.role, mapped.department_id) == ("expert", "auslaenderbehoerde")


def test_an_interpreter_collects_languages_from_every_entry_and_the_languages_claim() -> None:
    claims = {"groups": ["sprache-ar", "sprache-tr"], "langs": ["DGS", "not a language", 7]}
    mapped = map_claims(claims, RULES, roles_claim="groups", languages_claim="langs")
    assert mapped is not None and mapped.languages == {"ar", "tr", "ku", "dgs"}


def test_nobody_gets_a_default_role() -> None:
    assert map_claims({"groups": ["kantine"]}, RULES, roles_claim="groups") is None
    assert map_claims({}, RULES, roles_claim="groups") is None
    assert map_claims({"groups": {"beratung": True}}, RULES, roles_claim="groups") is None


def test_dots_reach_into_nested_claims_like_keycloaks_realm_roles() -> None:
    claims = {"realm_access": {"roles": ["offline_access", "admins"]}}
    mapped = map_claims(claims, RULES, roles_claim="realm_access.roles")
    assert mapped is not None and mapped.role == "admin"
    assert claim_values({"a.b": "flat"}, "a.b") == ["flat"]  # a claim whose name has a dot wins


@pytest.mark.parametrize("target", ["chef", "expert", "expert:Ämter", "interpreter:arabisch", "admin:x"])
def test_an_entry_naming_no_known_role_is_refused(target: str) -> None:
    with pytest.raises(RoleRuleError):
        parse_rules({"g": target})
