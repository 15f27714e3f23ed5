"""Short join codes: ``K7QM-3XWD-9FHT``, read aloud on the phone, typed from an SMS, sparse in a QR code.

Twelve symbols of Crockford's base32 (digits and capitals without I, L, O, U)
carry 60 random bits: unguessable, yet short enough for ``/j/K7QM-3XWD-9FHT``.
Reading is forgiving as Crockford intended: lower case, spaces and hyphens
anywhere, and O, I, L typed for 0, 1, 1 all find the same code. The server
keeps only a hash of a code, never the code. No I/O here.
"""

from __future__ import annotations

import hashlib
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
LENGTH = 12  # symbols: 60 bits
GROUP = 4
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_DROPPED = str.maketrans("", "", " -\u2010\u2011\u2012\u2013\u2212")


def generate(randbits: int | None = None) -> str:
    """A fresh code in its written form, ``XXXX-XXXX-XXXX`` (60 bits from ``secrets``)."""
    value = secrets.randbits(5 * LENGTH) if randbits is None else randbits
    symbols = "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(LENGTH)))
    return "-".join(symbols[i:i + GROUP] for i in range(0, LENGTH, GROUP))


def normalise(text: str) -> str | None:
    """The canonical twelve symbols of what someone typed, or None if it cannot be a code."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    code = text.upper().translate(_DROPPED).translate(_LOOKALIKES)
    if len(code) != LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def digest(code: str) -> str:
    """What the store keeps of a (normalised) code: a copy of the database opens no room."""
    return hashlib.sha256(code.encode("ascii")).hexdigest()
