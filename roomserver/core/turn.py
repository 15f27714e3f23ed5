"""Time-limited TURN credentials and the ICE server list sent in ``welcome``.

The TURN server and the room server share one secret and never talk to each
other: coturn started with ``use-auth-secret`` / ``static-auth-secret`` accepts
any username of the form ``"<expiry unix seconds>:<identity>"`` whose password
is ``base64(HMAC-SHA1(secret, username))`` while the expiry lies in the future
(the "TURN REST API" scheme). So each participant gets its own credential that
stops working by itself, and a leaked one is worth little. Nothing here does
I/O; the caller passes the clock in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

# An opaque seat id such as ``p_Kd93h2``. No ':' (coturn splits the username at
# the first ':' into expiry and identity), no whitespace or non-ASCII (the
# username travels in STUN messages and browser configs).
_IDENTITY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class TurnCredentials:
    """One participant's TURN username and password, valid until ``expires_at``."""

    username: str
    credential: str
    expires_at: int


def mint_credentials(
    secret: bytes, identity: str, ttl_seconds: int, now: float
) -> TurnCredentials:
    """Mint credentials for ``identity``, valid until ``now + ttl_seconds``.

    ``secret`` is the bytes of coturn's ``static-auth-secret`` string. Raises
    ValueError for an empty secret, a ttl that is not positive or an identity
    that is not a plain seat id, rather than minting something coturn would
    misread.
    """
    if not secret:
        raise ValueError("TURN secret must not be empty")
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise ValueError("TURN ttl_seconds must be an int")
    if ttl_seconds <= 0:
        raise ValueError("TURN ttl_seconds must be positive")
    if not isinstance(identity, str) or not _IDENTITY.fullmatch(identity):
        raise ValueError(
            "TURN identity must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'"
        )
    expires_at = int(now) + ttl_seconds
    username = f"{expires_at}:{identity}"
    digest = hmac.new(secret, username.encode("ascii"), hashlib.sha1).digest()
    return TurnCredentials(
        username=username,
        credential=base64.b64encode(digest).decode("ascii"),
        expires_at=expires_at,
    )


def ice_servers(
    stun_urls: Sequence[str],
    turn_urls: Sequence[str],
    credentials: TurnCredentials | None,
) -> list[dict]:
    """The RTCIceServer list sent to a client in ``welcome``.

    A STUN entry without credentials, a TURN entry with username/credential;
    empty lists give no entry. TURN URLs without credentials raise ValueError,
    since a browser refuses such an entry and the whole configuration with it.
    """
    if isinstance(stun_urls, str) or isinstance(turn_urls, str):
        raise ValueError("stun_urls and turn_urls must be lists of URLs, not a str")
    servers: list[dict] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls:
        if credentials is None:
            raise ValueError("TURN URLs need credentials")
        servers.append(
            {
                "urls": list(turn_urls),
                "username": credentials.username,
                "credential": credentials.credential,
            }
        )
    return servers
