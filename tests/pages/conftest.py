"""Fixtures of the page tests: a room server with two real OpenID Providers (``oidc_world``)."""

from tests.oidc.world import oidc_world  # noqa: F401 - fixture
