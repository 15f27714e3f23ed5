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
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "ROOMSERVER_"
DEFAULT_CONFIG_PATH = Path("config/roomserver.toml")


class ConfigError(Exception):
    """A setting is wrong; the message is one line that names it."""


def _opt(default: Any, doc: str, *, min: float | None = None, max: float | None = None,
         choices: tuple[str, ...] | None = None) -> Any:
    meta = {"doc": doc, "min": min, "max": max, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ServerSettings:
    host: str = _opt("127.0.0.1", "Address to listen on.")
    port: int = _opt(8080, "TCP port to listen on (0: any free port).", min=0, max=65535)
    public_url: str = _opt("", "Base URL people open, used in join links; empty: http://host:port.")
    data_dir: str = _opt("data", "Directory for the database, generated keys and secrets.")
    max_body_bytes: int = _opt(65536, "Largest accepted HTTP request body.", min=1024, max=10_485_760)
    log_level: str = _opt("INFO", "Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


@dataclass
class StoreSettings:
    path: str = _opt("", "SQLite file; empty: <data_dir>/roomserver.sqlite3.")
    synchronous: str = _opt("full", "SQLite synchronous mode in WAL: 'full' survives power loss, "
                            "'normal' survives a killed process.", choices=("full", "normal"))


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
    max_failed_logins: int = _opt(5, "Failed sign-ins in a row before an account is locked.", min=1, max=100)
    lockout_seconds: int = _opt(300, "How long a locked account stays locked.", min=10, max=86400)


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
    queue_size: int = _opt(1000, "Undelivered webhook events kept in memory; when full the oldest is dropped.",
                           min=1, max=1_000_000)
    timeout_seconds: float = _opt(5.0, "Timeout of one webhook delivery attempt.", min=0.1, max=120)
    max_attempts: int = _opt(8, "Delivery attempts per event and endpoint before it is given up.",
                             min=1, max=100)
    backoff_seconds: float = _opt(1.0, "First retry delay; doubles on every failure.", min=0.01, max=600)
    max_backoff_seconds: float = _opt(60.0, "Longest retry delay.", min=0.01, max=3600)


@dataclass
class AuditSettings:
    retention_days: int = _opt(90, "Audit events older than this many days are deleted (daily and at start).",
                               min=1, max=36500)


@dataclass
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    rooms: RoomSettings = field(default_factory=RoomSettings)
    signalling: SignallingSettings = field(default_factory=SignallingSettings)
    calls: CallSettings = field(default_factory=CallSettings)
    ice: IceSettings = field(default_factory=IceSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    source: str = "built-in defaults"
    # Secrets read from the environment or files; never from the TOML itself.
    turn_secret: bytes | None = field(default=None, repr=False)
    api_keys: dict[str, str] | None = field(default=None, repr=False)
    metrics_token: str | None = field(default=None, repr=False)
    webhooks_secret: bytes | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def store_path(self) -> Path:
        return Path(self.store.path) if self.store.path else self.data_dir / "roomserver.sqlite3"

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
        return f"http://{host}:{self.server.port}"


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Settings)  # type: ignore[misc]
                             if f.default_factory is not dataclasses.MISSING
                             and dataclasses.is_dataclass(f.default_factory)}
SECRET_ENV = {
    "turn_secret": f"{ENV_PREFIX}ICE_TURN_SECRET",
    "api_keys": f"{ENV_PREFIX}AUTH_API_KEYS",
    "metrics_token": f"{ENV_PREFIX}METRICS_TOKEN",
    "webhooks_secret": f"{ENV_PREFIX}WEBHOOKS_SECRET",
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
    return text


def _unknown(kind: str, name: str, known: list[str], where: str) -> ConfigError:
    hint = difflib.get_close_matches(name, known, n=1)
    did_you_mean = f" (did you mean '{hint[0]}'?)" if hint else ""
    return ConfigError(f"config: unknown {kind} {where}{did_you_mean}")


def _build(raw: Mapping[str, Any], env: Mapping[str, str]) -> Settings:
    settings = Settings()
    for section, value in raw.items():
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
            setattr(target, name, _coerce(section, name, fields[name], item, ""))
    for section, cls in SECTIONS.items():
        target = getattr(settings, section)
        for f in dataclasses.fields(cls):
            var = f"{ENV_PREFIX}{section}_{f.name}".upper()
            if var in env:
                setattr(target, f.name, _coerce(section, f.name, f, _parse_env(f, env[var]), var))
    return settings


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
    if settings.webhooks.urls and not settings.webhooks_secret:
        raise ConfigError("config: [webhooks] urls is set but no signing secret: set secret_file "
                          f"or {SECRET_ENV['webhooks_secret']}")


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
    return settings


def _validate_together(settings: Settings) -> None:
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
    for item in settings.metrics.allow_from:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(f"config: [metrics] allow_from entry {_describe(item)} is not a network "
                              "like 10.0.0.0/8") from None
    for item in settings.webhooks.urls:
        if not (item.startswith("http://") or item.startswith("https://")):
            raise ConfigError(f"config: [webhooks] urls entry {_describe(item)} must start with http:// or https://")


def documented_keys() -> dict[str, dict[str, tuple[Any, str]]]:
    """Every key with its default and doc: used to check the shipped TOML documents them all."""
    out: dict[str, dict[str, tuple[Any, str]]] = {}
    for section, cls in SECTIONS.items():
        out[section] = {f.name: (getattr(cls(), f.name), f.metadata["doc"]) for f in dataclasses.fields(cls)}
    return out
