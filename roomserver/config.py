"""Settings: one TOML file, every key overridable by an environment variable.

The schema below is the single source of truth: the loader checks the file
against it, the environment overrides use it to parse strings, and
``config/roomserver.toml`` documents the same keys. A bad setting stops the
server with one line naming the key, never with a traceback.

Secrets never live in the TOML file: they come from the environment or from a
file named in the TOML, or the embedded default generates them into the data
directory on first start (see ``secrets.py``).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ENV_PREFIX = "ROOMSERVER_"
DEFAULT_CONFIG_PATH = Path("config/roomserver.toml")


class ConfigError(Exception):
    """A setting is wrong; the message is one line that names it."""


def _opt(default: Any, doc: str, *, min: float | None = None, max: float | None = None,
         choices: tuple[str, ...] | None = None) -> Any:
    meta = {"doc": doc, "min": min, "max": max, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ServerSettings:
    host: str = _opt("127.0.0.1", "Address to listen on.")
    port: int = _opt(8080, "TCP port to listen on (0: any free port).", min=0, max=65535)
    public_url: str = _opt("", "Base URL people open, used in join links; empty: http://host:port.")
    data_dir: str = _opt("data", "Directory for the database, generated keys and secrets.")
    max_body_bytes: int = _opt(65536, "Largest accepted HTTP request body.", min=1024, max=10_485_760)
    log_level: str = _opt("INFO", "Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    tls_cert_file: str = _opt("", "PEM certificate (chain) to serve HTTPS directly; empty: plain HTTP (behind "
                              "a TLS-terminating proxy such as deploy/nginx). Needs tls_key_file.")
    tls_key_file: str = _opt("", "PEM private key of tls_cert_file.")
    hsts_seconds: int = _opt(31_536_000, "max-age of the Strict-Transport-Security header sent on HTTPS "
                             "answers (0: none).", min=0, max=63_072_000)
    trusted_proxies: list[str] = _opt([], "Addresses or networks (CIDR) of reverse proxies whose "
                                      "X-Forwarded-For/-Proto/-Host are believed; from anyone else they are "
                                      "ignored.")
    idle_timeout_seconds: float = _opt(15.0, "A connection must send a complete request head within this "
                                       "(also: idle keep-alive, TLS handshake), else it is closed.",
                                       min=1, max=600)
    body_timeout_seconds: float = _opt(15.0, "A request body must arrive within this, else 408.", min=1, max=600)
    max_connections_per_client: int = _opt(256, "Open connections per client address (an IPv6 /64 counts as "
                                           "one client; trusted proxies are exempt); the next one gets 503.",
                                           min=1, max=1_000_000)


@dataclass
class StoreSettings:
    url: str = _opt("", "Empty: the embedded SQLite file (path below). postgresql://user@host:port/db: "
                    "PostgreSQL, shared by every node of a cluster (run 'roomserver migrate' first). A password "
                    "goes in password_file or in ROOMSERVER_STORE_URL, never here.")
    password_file: str = _opt("", "File holding the PostgreSQL password (or use PGPASSFILE).")
    pool_size: int = _opt(8, "PostgreSQL connections (and store threads) per node.", min=1, max=100)
    path: str = _opt("", "SQLite file; empty: <data_dir>/roomserver.sqlite3.")
    synchronous: str = _opt("full", "SQLite synchronous mode in WAL: 'full' survives power loss, "
                            "'normal' survives a killed process.", choices=("full", "normal"))


@dataclass
class ClusterSettings:
    redis_url: str = _opt("", "Empty: one node, live state in this process. redis://host:port/db (or rediss:// "
                          "for TLS): cluster mode, live state and messages between nodes in Redis. A password "
                          "goes in redis_password_file or in ROOMSERVER_CLUSTER_REDIS_URL, never here.")
    redis_password_file: str = _opt("", "File holding the Redis password (AUTH).")
    node_id: str = _opt("", "This node's name in the cluster (letters, digits, . _ -); empty: the host name "
                        "and process id. Each running process adds a random suffix, so a restarted node "
                        "never mistakes its predecessor's rooms for its own.")
    key_prefix: str = _opt("roomserver", "Prefix of every Redis key and channel, so deployments can share a "
                           "Redis.")
    node_ttl_seconds: float = _opt(5.0, "A node that has not renewed its registration in Redis for this long "
                                   "counts as lost: another node takes its rooms over.", min=1, max=120)
    rpc_timeout_seconds: float = _opt(3.0, "How long a node waits for the owner of a room to answer before it "
                                      "looks for the owner again.", min=0.2, max=60)


@dataclass
class TokenSettings:
    issuer: str = _opt("roomserver", "The iss claim of every token.")
    audience: str = _opt("roomserver", "The aud claim of every token.")
    algorithm: str = _opt("EdDSA", "Signing algorithm of new keys.", choices=("EdDSA", "ES256", "HS256"))
    keys_dir: str = _opt("", "Key set directory; empty: <data_dir>/keys.")
    leeway_seconds: int = _opt(10, "Clock skew tolerated on exp and nbf.", min=0, max=300)
    counsellor_lifetime_seconds: int = _opt(300, "Lifetime of a counsellor's join token.", min=30, max=86400)
    expert_lifetime_seconds: int = _opt(120, "Lifetime of an expert patch-in token (single-use).", min=30, max=86400)
    interpreter_lifetime_seconds: int = _opt(120, "Lifetime of an interpreter patch-in token (single-use).",
                                             min=30, max=86400)
    citizen_lead_seconds: int = _opt(900, "A citizen's invite is valid from this long before the "
                                     "scheduled start.", min=0, max=86400)
    citizen_lifetime_seconds: int = _opt(14400, "Lifetime of a citizen invite for a room without a "
                                         "scheduled end.", min=60, max=604800)
    max_lifetime_seconds: int = _opt(1_209_600, "No token is valid for longer than this (nbf to exp).",
                                     min=60, max=31_536_000)


@dataclass
class RoomSettings:
    max_participants: int = _opt(6, "Endpoints per room (a mesh: 2 to 6).", min=2, max=6)
    default_duration_minutes: int = _opt(60, "Scheduled length of a room created without an end.",
                                         min=5, max=1440)
    waiting_room: bool = _opt(True, "Whether new rooms have a waiting room unless told otherwise.")
    empty_timeout_seconds: int = _opt(600, "A room nobody is in for this long ends.", min=10, max=86400)
    overrun_minutes: int = _opt(30, "A running consultation may run this long past its scheduled end "
                                "before it is ended.", min=0, max=720)


@dataclass
class SignallingSettings:
    join_timeout_seconds: float = _opt(5.0, "A socket that sends no join/resume within this is closed.",
                                       min=0.5, max=60)
    max_message_bytes: int = _opt(65536, "Largest accepted signalling message.", min=4096, max=1_048_576)
    rate_per_second: float = _opt(50.0, "Sustained messages per second per socket.", min=1, max=10000)
    rate_burst: int = _opt(200, "Burst of messages allowed above the sustained rate.", min=1, max=100000)
    heartbeat_seconds: float = _opt(5.0, "WebSocket ping interval; two missed pongs mark a socket dead.",
                                    min=1, max=120)
    resume_grace_seconds: float = _opt(30.0, "How long a dropped participant keeps its seat.", min=1, max=3600)


@dataclass
class CallSettings:
    ring_timeout_seconds: int = _opt(60, "How long an expert call rings before the counsellor is told nobody "
                                     "answered.", min=1, max=600)


@dataclass
class IceSettings:
    stun_urls: list[str] = _opt([], "STUN server URLs handed to clients.")
    turn_urls: list[str] = _opt([], "TURN server URLs handed to clients with per-participant credentials.")
    turn_secret_file: str = _opt("", "File holding the TURN shared secret (coturn static-auth-secret); "
                                 "or set ROOMSERVER_ICE_TURN_SECRET.")
    turn_credential_lifetime_seconds: int = _opt(14400, "Lifetime of minted TURN credentials.",
                                                 min=60, max=172800)


@dataclass
class AuthSettings:
    session_lifetime_seconds: int = _opt(28800, "Lifetime of a staff session.", min=300, max=604800)
    api_keys_file: str = _opt("", "File of API keys, one 'name:key' a line; empty: <data_dir>/api-keys "
                              "(generated). Or set ROOMSERVER_AUTH_API_KEYS='name:key,...'.")
    cookie_secure: str = _opt("auto", "Secure flag of the session cookie: auto (when public_url is https), "
                              "always, never.", choices=("auto", "always", "never"))
    signin_free_failures: int = _opt(5, "Failed sign-ins for one account from one address (or one trusted "
                                     "browser) before each further one makes the next attempt wait longer "
                                     "(1, 2, 4 ... s). No account is ever locked.", min=1, max=100)
    signin_free_failures_other: int = _opt(20, "The same for all accounts from one address, and for one account "
                                           "from all addresses that are not its trusted browsers.", min=1, max=1000)
    signin_max_delay_seconds: int = _opt(300, "The longest wait between sign-in attempts after many failures.",
                                         min=1, max=3600)
    local_accounts: bool = _opt(True, "Whether staff may sign in with a local username and password. false: "
                                "only through the [oidc.<name>] providers (at least one must be set).")


@dataclass
class DemoSettings:
    seed_on_first_start: bool = _opt(True, "Create the demo departments and accounts in an empty database.")


@dataclass
class MetricsSettings:
    allow_from: list[str] = _opt(["127.0.0.1/32", "::1/128"], "Networks (CIDR) that may read /metrics without "
                                 "a token.")
    token_file: str = _opt("", "File holding a bearer token that opens /metrics from anywhere; or set "
                           "ROOMSERVER_METRICS_TOKEN.")


@dataclass
class WebhookSettings:
    urls: list[str] = _opt([], "Endpoints (http/https URLs) that receive signed room and call events.")
    secret_file: str = _opt("", "File holding the HMAC-SHA256 signing secret of webhooks; or set "
                            "ROOMSERVER_WEBHOOKS_SECRET.")
    queue_size: int = _opt(1000, "Undelivered webhook events kept per endpoint in the outbox; when full the oldest is "
                           "dropped.",
                           min=1, max=1_000_000)
    timeout_seconds: float = _opt(5.0, "Timeout of one webhook delivery attempt.", min=0.1, max=120)
    max_attempts: int = _opt(8, "Delivery attempts per event and endpoint before it is given up.",
                             min=1, max=100)
    backoff_seconds: float = _opt(1.0, "First retry delay; doubles on every failure.", min=0.01, max=600)
    max_backoff_seconds: float = _opt(60.0, "Longest retry delay.", min=0.01, max=3600)


@dataclass
class OutboxSettings:
    poll_seconds: float = _opt(1.0, "How often each node looks for due outbound messages (webhook events, "
                               "e-mails) in the store's outbox.", min=0.01, max=60)
    lease_seconds: float = _opt(120.0, "A node claims a message for this long while it sends it; a node that "
                                "dies leaves its claims to the others after this.", min=1, max=3600)


@dataclass
class MailSettings:
    smtp_host: str = _opt("", "SMTP server for e-mail invitations; empty: no e-mail (the invite dialog hides "
                          "it and the API refuses 'email').")
    smtp_port: int = _opt(587, "SMTP port (587 with starttls, 465 with tls).", min=1, max=65535)
    security: str = _opt("starttls", "starttls, tls (implicit TLS) or none (a relay on this host only).",
                         choices=("starttls", "tls", "none"))
    username: str = _opt("", "SMTP user name; empty: no authentication.")
    password_file: str = _opt("", "File holding the SMTP password; or set ROOMSERVER_MAIL_PASSWORD.")
    from_address: str = _opt("", "Sender address of invitations (needed when smtp_host is set).")
    from_name: str = _opt("Videoberatung", "Sender name shown with the address.")
    timezone: str = _opt("Europe/Berlin", "Time zone of the dates and times in e-mails and calendar entries.")
    reminders: list[str] = _opt(["24h", "1h"], "Reminders before the scheduled start, e.g. \"24h\", \"90m\"; "
                                "[] for none.")
    timeout_seconds: float = _opt(30.0, "Timeout of one SMTP delivery.", min=1, max=600)
    max_attempts: int = _opt(10, "Delivery attempts per e-mail before it is given up.", min=1, max=100)
    backoff_seconds: float = _opt(30.0, "First retry delay; doubles on every failure.", min=0.01, max=3600)
    max_backoff_seconds: float = _opt(1800.0, "Longest retry delay.", min=0.01, max=86400)

    def reminder_seconds(self) -> list[int]:
        """The reminders as seconds before the start, longest first."""
        return sorted({parse_duration(r) for r in self.reminders}, reverse=True)


def parse_duration(text: str) -> int:
    """``"24h"`` or ``"90m"`` as seconds; ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d{1,4})\s*([hm])\s*", text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(text)
    return int(m.group(1)) * (3600 if m.group(2) == "h" else 60)


@dataclass
class AuditSettings:
    retention_days: int = _opt(90, "Audit events older than this many days are deleted (daily and at start).",
                               min=1, max=36500)


@dataclass
class ReportSettings:
    """The pilot evaluation (/reports, /api/v1/reports): aggregates only, small cells hidden."""

    min_events: int = _opt(5, "A figure built from fewer events than this is hidden ('< 5').", min=2, max=1000)
    timezone: str = _opt("Europe/Berlin", "Time zone whose days, weeks and months the reports count in.")
    months_kept: int = _opt(36, "Finished months are stored as aggregates (small cells hidden) and kept this "
                            "many months, longer than the records they come from.", min=0, max=240)
    alert_answer_rate: float = _opt(0.5, "A department whose answer rate in the last window falls below this "
                                    "share is flagged on the operator dashboard and sent as a webhook event "
                                    "(0: never).", min=0, max=1)
    alert_window_minutes: int = _opt(60, "The window the answer-rate alert looks at.", min=5, max=1440)
    alert_check_seconds: int = _opt(60, "How often the answer-rate alert is checked.", min=5, max=3600)


@dataclass
class PrivacySettings:
    """Who is responsible for the data and how long records live: the citizen's data notice shows it."""

    controller_name: str = _opt("BEISPIEL – bitte in [privacy] eintragen: Agentur für Arbeit Musterstadt",
                                "Controller (Art. 13 GDPR) named in the citizens' data notice.")
    controller_address: str = _opt("Musterstraße 1, 12345 Musterstadt", "Postal address of the controller.")
    controller_contact: str = _opt("datenschutz@example.invalid", "E-mail or phone of the controller "
                                   "for questions about the data.")
    dpo_name: str = _opt("BEISPIEL – bitte eintragen: Datenschutzbeauftragte der Agentur", "Data protection "
                         "officer named in the notice.")
    dpo_contact: str = _opt("dsb@example.invalid", "E-mail or address of the data protection officer.")
    authority: str = _opt("BEISPIEL – bitte eintragen: die Landesbeauftragte für Datenschutz, Anschrift",
                          "Supervisory authority citizens may complain to (Art. 13(2)(d) GDPR).")
    legal_basis: str = _opt("", "Legal basis as the controller words it (German, shown in every language); "
                            "empty: the catalog's standard text.")
    records_retention_days: int = _opt(90, "Rooms, invites (with the name typed), consents and expert calls "
                                       "are deleted this many days after the consultation is over.",
                                       min=1, max=3650)

    def placeholders(self) -> list[str]:
        """The keys still holding the demo's example (marked BEISPIEL): not ready for real citizens."""
        return [f.name for f in dataclasses.fields(self)
                if f.type == "str" and f.default and getattr(self, f.name) == f.default]


@dataclass
class OidcProviderSettings:
    """One OpenID Connect provider, a table ``[oidc.<name>]`` (the agency's, the county's, ...)."""

    display_name: str = _opt("", "Label of this provider's button on the sign-in page (required).")
    issuer: str = _opt("", "Issuer URL, as in the provider's discovery document (required; https, http only "
                       "on loopback).")
    client_id: str = _opt("", "The room server's client id at this provider (required).")
    client_secret_file: str = _opt("", "File holding the client secret; or set "
                                   "ROOMSERVER_OIDC_<NAME>_CLIENT_SECRET. Not needed when token_auth is 'none'.")
    token_auth: str = _opt("client_secret_basic", "How the server proves itself at the token endpoint.",
                           choices=("client_secret_basic", "client_secret_post", "none"))
    scopes: list[str] = _opt(["openid", "profile", "email"], "Scopes asked for ('openid' is always sent).")
    algorithms: list[str] = _opt(["RS256", "ES256", "PS256", "EdDSA"], "ID token signature algorithms "
                                 "accepted (asymmetric only).")
    username_claim: str = _opt("preferred_username", "Claim that names the person (the account is "
                               "'<name>:<value>'); the subject when the claim is missing.")
    name_claim: str = _opt("name", "Claim with the display name.")
    roles_claim: str = _opt("groups", "Claim (a string or a list; dots reach into objects, e.g. "
                            "realm_access.roles) whose values the roles table maps.")
    roles: dict[str, str] = _opt({}, "Claim value = role: 'counsellor', 'expert:<department id>', "
                                 "'interpreter' or 'interpreter:<lang>+<lang>', 'operator', 'admin'. The first "
                                 "matching entry decides the role; a person matching none is refused.")
    languages_claim: str = _opt("", "Claim listing an interpreter's languages (added to those of the roles "
                                "table); empty: none.")
    session_lifetime_seconds: int = _opt(0, "Session lifetime for people of this provider; 0: [auth] "
                                         "session_lifetime_seconds, which also caps it.", min=0, max=604800)
    timeout_seconds: float = _opt(10.0, "Timeout of one request to the provider.", min=0.5, max=120)
    leeway_seconds: int = _opt(60, "Clock skew tolerated on the ID token's times.", min=0, max=600)
    keys_cache_seconds: int = _opt(300, "The provider's key set is read again after this long (a key the "
                                   "provider removed is refused from then on); a token naming a key not yet "
                                   "known makes it read again at once.", min=0, max=86400)

    name: str = field(default="", metadata={"doc": "", "internal": True})
    client_secret: str | None = field(default=None, repr=False, metadata={"doc": "", "internal": True})


OIDC_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_SYMMETRIC = ("HS256", "HS384", "HS512", "none")


@dataclass
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    rooms: RoomSettings = field(default_factory=RoomSettings)
    signalling: SignallingSettings = field(default_factory=SignallingSettings)
    calls: CallSettings = field(default_factory=CallSettings)
    ice: IceSettings = field(default_factory=IceSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    oidc: dict[str, OidcProviderSettings] = field(default_factory=dict)
    reports: ReportSettings = field(default_factory=ReportSettings)
    source: str = "built-in defaults"
    # Secrets read from the environment or files; never from the TOML itself.
    turn_secret: bytes | None = field(default=None, repr=False)
    api_keys: dict[str, str] | None = field(default=None, repr=False)
    metrics_token: str | None = field(default=None, repr=False)
    webhooks_secret: bytes | None = field(default=None, repr=False)
    store_password: str | None = field(default=None, repr=False)
    redis_password: str | None = field(default=None, repr=False)
    mail_password: str | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def store_path(self) -> Path:
        return Path(self.store.path) if self.store.path else self.data_dir / "roomserver.sqlite3"

    @property
    def store_url(self) -> str:
        """``[store] url`` with the password from ``password_file`` put in (never logged)."""
        return _with_password(self.store.url, self.store_password)

    @property
    def redis_url(self) -> str:
        """``[cluster] redis_url`` with the password from ``redis_password_file`` put in (never logged)."""
        return _with_password(self.cluster.redis_url, self.redis_password)

    @property
    def clustered(self) -> bool:
        return bool(self.cluster.redis_url)

    @property
    def keys_dir(self) -> Path:
        return Path(self.tokens.keys_dir) if self.tokens.keys_dir else self.data_dir / "keys"

    @property
    def api_keys_path(self) -> Path:
        return Path(self.auth.api_keys_file) if self.auth.api_keys_file else self.data_dir / "api-keys"

    @property
    def base_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        host = self.server.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.server.tls_cert_file else "http"
        return f"{scheme}://{host}:{self.server.port}"


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Settings)  # type: ignore[misc]
                             if f.default_factory is not dataclasses.MISSING
                             and dataclasses.is_dataclass(f.default_factory)}
OIDC_FIELDS = {f.name: f for f in dataclasses.fields(OidcProviderSettings) if not f.metadata.get("internal")}
SECRET_ENV = {
    "turn_secret": f"{ENV_PREFIX}ICE_TURN_SECRET",
    "api_keys": f"{ENV_PREFIX}AUTH_API_KEYS",
    "metrics_token": f"{ENV_PREFIX}METRICS_TOKEN",
    "webhooks_secret": f"{ENV_PREFIX}WEBHOOKS_SECRET",
    "mail_password": f"{ENV_PREFIX}MAIL_PASSWORD",
}


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _coerce(section: str, name: str, f: dataclasses.Field, value: Any, origin: str) -> Any:
    """Check one value against its field; return it in the field's type."""
    where = f"[{section}] {name}"
    meta = f.metadata
    kind = f.type
    suffix = f" (from {origin})" if origin else ""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"config: {where} must be {expected}, got {_describe(value)}{suffix}")

    if kind == "bool":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(_range_text("an integer", meta))
        _check_range(value, meta, fail, "an integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(_range_text("a number", meta))
        _check_range(value, meta, fail, "a number")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise fail("a string")
        if meta.get("choices") and value not in meta["choices"]:
            raise fail("one of " + ", ".join(repr(c) for c in meta["choices"]))
        return value
    if kind == "list[str]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail("a list of strings")
        return list(value)
    if kind == "dict[str, str]":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise fail("a table of strings")
        return dict(value)
    raise ConfigError(f"config: {where} has an unsupported type {kind}")  # pragma: no cover


def _range_text(what: str, meta: Mapping[str, Any]) -> str:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and hi is not None:
        return f"{what} from {lo:g} to {hi:g}"
    return what


def _check_range(value: float, meta: Mapping[str, Any], fail: Any, what: str) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise fail(_range_text(what, meta))


def _parse_env(f: dataclasses.Field, text: str) -> Any:
    """Turn an environment string into the field's type (checked later)."""
    kind = f.type
    stripped = text.strip()
    if kind == "bool":
        lowered = stripped.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return text
    if kind == "int":
        try:
            return int(stripped)
        except ValueError:
            return text
    if kind == "float":
        try:
            return float(stripped)
        except ValueError:
            return text
    if kind == "list[str]":
        return [part.strip() for part in stripped.split(",") if part.strip()]
    if kind == "dict[str, str]":  # "value=role,value=role"
        pairs = [part.partition("=") for part in stripped.split(",") if part.strip()]
        if not all(sep for _, sep, _ in pairs):
            return text
        return {k.strip(): v.strip() for k, _, v in pairs}
    return text


def _unknown(kind: str, name: str, known: list[str], where: str) -> ConfigError:
    hint = difflib.get_close_matches(name, known, n=1)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    return ConfigError(f"config: unknown {kind} {where}{did_you_mean}")


_URL_KEYS = {("store", "url"): "[store] password_file", ("cluster", "redis_url"): "[cluster] redis_password_file"}


def _has_password(url: str) -> bool:
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


def _build(raw: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    settings = Settings()
    for section, value in raw.items():
        if section == "oidc":
            settings.oidc = _build_oidc(value, env)
            continue
        if section not in SECTIONS:
            raise _unknown("section", section, list(SECTIONS), f"[{section}]")
        if not isinstance(value, dict):
            raise ConfigError(f"config: [{section}] must be a table of keys, got {_describe(value)}")
        cls = SECTIONS[section]
        fields = {f.name: f for f in dataclasses.fields(cls)}
        target = getattr(settings, section)
        for name, item in value.items():
            if name not in fields:
                if "secret" in name or name.endswith("keys"):
                    raise ConfigError(f"config: [{section}] {name}: secrets do not belong in the config file; "
                                      f"put them in a file or the environment")
                raise _unknown("key", name, list(fields), f"[{section}] {name}")
            value = _coerce(section, name, fields[name], item, "")
            if (section, name) in _URL_KEYS and isinstance(value, str) and _has_password(value):
                raise ConfigError(f"config: [{section}] {name}: a password does not belong in the config file; "
                                  f"put it in {_URL_KEYS[(section, name)]} or the environment")
            setattr(target, name, value)
    for section, cls in SECTIONS.items():
        target = getattr(settings, section)
        for f in dataclasses.fields(cls):
            var = f"{ENV_PREFIX}{section}_{f.name}".upper()
            if var in env:
                setattr(target, f.name, _coerce(section, f.name, f, _parse_env(f, env[var]), var))
    return settings


def _build_oidc(raw: Any, env: Mapping[str, str]) -> dict[str, OidcProviderSettings]:
    """The ``[oidc.<name>]`` tables in file order, each key overridable by ROOMSERVER_OIDC_<NAME>_<KEY>."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: [oidc] must hold tables like [oidc.agentur], got {_describe(raw)}")
    providers: dict[str, OidcProviderSettings] = {}
    for name, table in raw.items():
        where = f"oidc.{name}"
        if not OIDC_NAME.fullmatch(name):
            raise ConfigError(f"config: [{where}]: a provider name must be 1 to 32 lower-case letters, digits or "
                              "'-', starting with a letter")
        if not isinstance(table, dict):
            raise ConfigError(f"config: [{where}] must be a table of keys, got {_describe(table)}")
        provider = OidcProviderSettings(name=name)
        for key, item in table.items():
            if key not in OIDC_FIELDS:
                if "secret" in key:
                    raise ConfigError(f"config: [{where}] {key}: secrets do not belong in the config file; put "
                                      f"the client secret in client_secret_file or "
                                      f"{oidc_env(name, 'client_secret')}")
                raise _unknown("key", key, list(OIDC_FIELDS), f"[{where}] {key}")
            setattr(provider, key, _coerce(where, key, OIDC_FIELDS[key], item, ""))
        for key, f in OIDC_FIELDS.items():
            var = oidc_env(name, key)
            if var in env:
                setattr(provider, key, _coerce(where, key, f, _parse_env(f, env[var]), var))
        providers[name] = provider
    return providers


def oidc_env(name: str, key: str) -> str:
    """The environment variable that overrides ``key`` of provider ``name``."""
    return f"{ENV_PREFIX}OIDC_{name}_{key}".upper().replace("-", "_")


def _is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _validate_oidc(settings: Settings, env: Mapping[str, str]) -> None:
    """Each provider complete and sound; its client secret read (file or environment)."""
    from .core.claimmap import RoleRuleError, parse_rules
    for name, p in settings.oidc.items():
        where = f"[oidc.{name}]"
        for key in ("display_name", "issuer", "client_id"):
            if not getattr(p, key).strip():
                raise ConfigError(f"config: {where} {key} is required")
        try:
            parts = urlsplit(p.issuer)
            ok = parts.scheme == "https" or (parts.scheme == "http" and _is_loopback_url(p.issuer))
            ok = ok and bool(parts.hostname) and not parts.query and not parts.fragment
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"config: {where} issuer must be an https:// URL (http:// only on loopback), got "
                              f"{_describe(p.issuer)}")
        if not p.algorithms:
            raise ConfigError(f"config: {where} algorithms must name at least one algorithm")
        for alg in p.algorithms:
            if alg in _SYMMETRIC or alg not in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
                                                "ES384", "ES512", "EdDSA", "Ed25519"):
                raise ConfigError(f"config: {where} algorithms entry {_describe(alg)} is not an asymmetric "
                                  "signature algorithm (RS256, PS256, ES256, EdDSA, ...)")
        if not p.roles:
            raise ConfigError(f"config: {where} roles is empty: nobody could sign in; map claim values to roles")
        try:
            parse_rules(p.roles)
        except RoleRuleError as exc:
            raise ConfigError(f"config: {where} roles: {exc}") from None
        secret_var = oidc_env(name, "client_secret")
        if env.get(secret_var):
            p.client_secret = env[secret_var].strip()
        elif p.client_secret_file:
            p.client_secret = _read_secret_file(f"oidc.{name}", "client_secret_file", p.client_secret_file)
        if p.token_auth != "none" and not p.client_secret:
            raise ConfigError(f"config: {where} has no client secret: set client_secret_file or {secret_var} "
                              "(or token_auth = 'none' for a public client)")
        if p.session_lifetime_seconds and p.session_lifetime_seconds < 300:
            raise ConfigError(f"config: {where} session_lifetime_seconds must be 0 or from 300 to 604800")
    if not settings.auth.local_accounts and not settings.oidc:
        raise ConfigError("config: [auth] local_accounts = false needs at least one [oidc.<name>] provider, or "
                          "nobody could sign in")


def _load_secrets(settings: Settings, env: Mapping[str, str]) -> None:
    """Read the secrets named by the settings; a named file that is missing is fatal."""
    turn_env = env.get(SECRET_ENV["turn_secret"])
    if turn_env:
        settings.turn_secret = turn_env.encode()
    elif settings.ice.turn_secret_file:
        settings.turn_secret = _read_secret_file("ice", "turn_secret_file", settings.ice.turn_secret_file).encode()
    if settings.ice.turn_urls and not settings.turn_secret:
        raise ConfigError("config: [ice] turn_urls is set but no TURN secret: set turn_secret_file "
                          f"or {SECRET_ENV['turn_secret']}")
    keys_env = env.get(SECRET_ENV["api_keys"])
    if keys_env:
        settings.api_keys = parse_api_keys(keys_env.replace(",", "\n"), SECRET_ENV["api_keys"])
    elif settings.auth.api_keys_file:
        text = _read_secret_file("auth", "api_keys_file", settings.auth.api_keys_file)
        settings.api_keys = parse_api_keys(text, f"[auth] api_keys_file {settings.auth.api_keys_file}")
    token_env = env.get(SECRET_ENV["metrics_token"])
    if token_env:
        settings.metrics_token = token_env.strip()
    elif settings.metrics.token_file:
        settings.metrics_token = _read_secret_file("metrics", "token_file", settings.metrics.token_file)
    hook_env = env.get(SECRET_ENV["webhooks_secret"])
    if hook_env:
        settings.webhooks_secret = hook_env.encode()
    elif settings.webhooks.secret_file:
        settings.webhooks_secret = _read_secret_file("webhooks", "secret_file",
                                                     settings.webhooks.secret_file).encode()
    if settings.store.password_file:
        settings.store_password = _read_secret_file("store", "password_file", settings.store.password_file)
    if settings.cluster.redis_password_file:
        settings.redis_password = _read_secret_file("cluster", "redis_password_file",
                                                    settings.cluster.redis_password_file)
    mail_env = env.get(SECRET_ENV["mail_password"])
    if mail_env:
        settings.mail_password = mail_env
    elif settings.mail.password_file:
        settings.mail_password = _read_secret_file("mail", "password_file", settings.mail.password_file)
    if settings.webhooks.urls and not settings.webhooks_secret:
        raise ConfigError("config: [webhooks] urls is set but no signing secret: set secret_file "
                          f"or {SECRET_ENV['webhooks_secret']}")


def _with_password(url: str, password: str | None) -> str:
    if not url or not password:
        return url
    parts = urlsplit(url)
    user = quote(parts.username or "", safe="")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _read_secret_file(section: str, key: str, path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"config: [{section}] {key}: file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config: [{section}] {key}: cannot read {path}: {exc.strerror}") from None
    if not text:
        raise ConfigError(f"config: [{section}] {key}: file {path} is empty")
    return text


def parse_api_keys(text: str, origin: str) -> dict[str, str]:
    """Parse ``name:key`` lines into ``{key: name}``; comments and blanks are skipped."""
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, key = line.partition(":")
        if not sep or not name.strip() or len(key.strip()) < 16:
            raise ConfigError(f"config: {origin} line {number} must be 'name:key' with a key of at least "
                              f"16 characters")
        keys[key.strip()] = name.strip()
    return keys


def load(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate the settings; raise ``ConfigError`` with one line on any problem.

    ``path`` None means: ``$ROOMSERVER_CONFIG``, else ``config/roomserver.toml``
    when it exists, else the built-in defaults.
    """
    env = os.environ if env is None else env
    explicit = path is not None or bool(env.get(f"{ENV_PREFIX}CONFIG"))
    chosen = Path(path) if path is not None else Path(env.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_CONFIG_PATH)
    raw: dict[str, Any] = {}
    if chosen.exists():
        try:
            raw = tomllib.loads(chosen.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config: {chosen} is not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config: cannot read {chosen}: {exc}") from None
    elif explicit:
        raise ConfigError(f"config: file {chosen} does not exist")
    settings = _build(raw, env)
    settings.source = str(chosen) if chosen.exists() else "built-in defaults"
    _validate_together(settings)
    _load_secrets(settings, env)
    _validate_oidc(settings, env)
    return settings


def _validate_together(settings: Settings) -> None:
    try:
        ZoneInfo(settings.reports.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"config: [reports] timezone must be a time zone like Europe/Berlin, got "
                          f"{_describe(settings.reports.timezone)}") from None
    """Checks that involve more than one key."""
    url = settings.server.public_url
    if url and not (url.startswith("http://") or url.startswith("https://")):
        raise ConfigError(f"config: [server] public_url must start with http:// or https://, got {_describe(url)}")
    for name in ("stun_urls", "turn_urls"):
        for item in getattr(settings.ice, name):
            scheme = item.split(":", 1)[0]
            allowed = ("stun", "stuns") if name == "stun_urls" else ("turn", "turns")
            if scheme not in allowed:
                raise ConfigError(f"config: [ice] {name} entry {_describe(item)} must start with "
                                  f"{' or '.join(a + ':' for a in allowed)}")
    _validate_server(settings)
    for item in settings.metrics.allow_from:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"config: [metrics] allow_from entry {_describe(item)} is not a network "
                              "like 10.0.0.0/8") from None
    store_url = settings.store.url
    if store_url and not store_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"config: [store] url must be empty (SQLite) or start with postgresql://, got "
                          f"{_describe(_without_password(store_url))}")
    redis_url = settings.cluster.redis_url
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"config: [cluster] redis_url must be empty (one node) or start with redis://, "
                          f"rediss:// or unix://, got {_describe(_without_password(redis_url))}")
    for name, url in (("store", store_url), ("cluster", redis_url)):
        if url:
            try:
                urlsplit(url).port
            except ValueError:
                raise ConfigError(f"config: [{name}] url has an invalid port: "
                                  f"{_describe(_without_password(url))}") from None
    node = settings.cluster.node_id
    if node and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", node):
        raise ConfigError(f"config: [cluster] node_id must be 1 to 64 letters, digits, '.', '_' or '-', got "
                          f"{_describe(node)}")
    if not re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", settings.cluster.key_prefix):
        raise ConfigError("config: [cluster] key_prefix must be 1 to 64 letters, digits, '.', '_', ':' or '-'")
    for item in settings.webhooks.urls:
        if not (item.startswith("http://") or item.startswith("https://")):
            raise ConfigError(f"config: [webhooks] urls entry {_describe(item)} must start with http:// or https://")
    for item in settings.mail.reminders:
        try:
            parse_duration(item)
        except ValueError:
            raise ConfigError(f"config: [mail] reminders entry {_describe(item)} must be hours or minutes "
                              "like \"24h\" or \"90m\"") from None
    try:
        ZoneInfo(settings.mail.timezone)
    except (ZoneInfoNotFoundError, ValueError, KeyError, OSError):
        raise ConfigError(f"config: [mail] timezone must be a time zone like \"Europe/Berlin\", got "
                          f"{_describe(settings.mail.timezone)}") from None
    if settings.mail.smtp_host and not re.fullmatch(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+",
                                                    settings.mail.from_address):
        raise ConfigError("config: [mail] smtp_host is set but from_address is not an e-mail address, got "
                          f"{_describe(settings.mail.from_address)}")


def _validate_server(settings: Settings) -> None:
    """TLS files come in pairs and must load; trusted proxies must be addresses or networks."""
    server = settings.server
    if bool(server.tls_cert_file) != bool(server.tls_key_file):
        missing = "tls_key_file" if server.tls_cert_file else "tls_cert_file"
        raise ConfigError(f"config: [server] {missing} must be set too: HTTPS needs a certificate and its key")
    if server.tls_cert_file:
        from .tls import TLSError, server_context
        try:
            server_context(server.tls_cert_file, server.tls_key_file)
        except TLSError as exc:
            raise ConfigError(f"config: [server] {exc}") from None
    for item in server.trusted_proxies:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"config: [server] trusted_proxies entry {_describe(item)} is not an address or "
                              "network like 127.0.0.1 or 10.0.0.0/8") from None


def _without_password(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    except ValueError:
        return url.split("@")[-1]


def documented_keys() -> dict[str, dict[str, tuple[Any, str]]]:
    """Every key with its default and doc: used to check the shipped TOML documents them all."""
    out: dict[str, dict[str, tuple[Any, str]]] = {}
    for section, cls in SECTIONS.items():
        out[section] = {f.name: (getattr(cls(), f.name), f.metadata["doc"]) for f in dataclasses.fields(cls)}
    return out
