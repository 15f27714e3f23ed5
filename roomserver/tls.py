"""The server's own HTTPS: a TLS context that offers only what BSI TR-02102-2 allows.

TLS 1.2 with ECDHE key exchange and AES-GCM, and TLS 1.3 with its two AES-GCM
suites; nothing older, no CBC, no RSA key exchange, no compression, no
renegotiation. Python's ``ssl`` module cannot choose TLS 1.3 suites, so they are
set on OpenSSL directly (``SSL_CTX_set_ciphersuites``) after checking that the
pointer really is this context's ``SSL_CTX``; when that is not possible the
OpenSSL defaults stay, which are AEAD only (a warning says so).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import ssl
from pathlib import Path

log = logging.getLogger("roomserver.tls")

# TLS 1.2: ECDHE (ECDSA or RSA certificates) with AES-GCM only, strongest first.
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
])
# TLS 1.3: CHACHA20-POLY1305 is not in TR-02102-2.
TLS13_SUITES = ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256")


class TLSError(Exception):
    """The certificate or key cannot be used; the message names the file."""


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server context for ``cert_file``/``key_file``; ``TLSError`` with one line if they do not load."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
                    | ssl.OP_SINGLE_ECDH_USE)
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise TLSError(f"tls_cert_file/tls_key_file: {exc.filename or cert_file} does not exist") from None
    except PermissionError as exc:
        raise TLSError(f"tls_cert_file/tls_key_file: cannot read {exc.filename or key_file}") from None
    except (ssl.SSLError, OSError):
        raise TLSError(f"tls_cert_file {cert_file} and tls_key_file {key_file} are not a PEM certificate and "
                       "its matching key") from None
    if not restrict_tls13(ctx):
        log.warning("TLS 1.3 suites could not be restricted to AES-GCM; OpenSSL's defaults (all AEAD) stay")
    return ctx


def restrict_tls13(ctx: ssl.SSLContext, suites: tuple[str, ...] = TLS13_SUITES) -> bool:
    """Set the TLS 1.3 suites on the context's ``SSL_CTX``; True when read back as asked."""
    try:
        lib = _libssl()
        if lib is None:
            return False
        # PySSLContext starts with PyObject_HEAD, then the SSL_CTX pointer.
        pointer = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        if not pointer:
            return False
        get_options = lib.SSL_CTX_get_options
        get_options.restype, get_options.argtypes = ctypes.c_uint64, [ctypes.c_void_p]
        if get_options(pointer) != int(ctx.options):  # not this context's SSL_CTX: touch nothing
            return False
        set_suites = lib.SSL_CTX_set_ciphersuites
        set_suites.restype, set_suites.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]
        if set_suites(pointer, ":".join(suites).encode()) != 1:
            return False
    except (AttributeError, OSError, ValueError):
        return False
    offered = {c["name"] for c in ctx.get_ciphers() if c.get("protocol") == "TLSv1.3"}
    return offered == set(suites)


def _libssl() -> ctypes.CDLL | None:
    """The libssl the ``ssl`` module uses (found through ``_ssl``'s own dependencies)."""
    candidates = [getattr(ssl._ssl, "__file__", None), None, ctypes.util.find_library("ssl")]  # type: ignore[attr-defined]
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            lib.SSL_CTX_set_ciphersuites  # noqa: B018 - probe the symbol
            return lib
        except (OSError, AttributeError):
            continue
    return None


def certificate_summary(cert_file: str) -> str:
    """Subject and expiry of the first certificate in ``cert_file`` (for check-config), or a short reason."""
    try:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
        subject = cert.subject.rfc4514_string() or "no subject"
        until = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after
        return f"{subject}, valid until {until:%Y-%m-%d}"
    except Exception:  # noqa: BLE001 - the context loaded it; this line is only a summary
        return "details unreadable"
