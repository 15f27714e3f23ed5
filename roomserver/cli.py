"""The ``roomserver`` command line.

Every failure prints one line to stderr and exits non-zero: 2 for bad
settings, 1 for anything else. Commands other than ``serve`` work on the same
data directory as the server (SQLite in WAL mode allows both at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Coroutine, Sequence, TextIO, TypeVar

from . import __version__, bootstrap, config
from .api.handlers import iso, parse_time, room_json
from .core.errors import RoomServerError
from .core.roles import Role
from .domain import demo
from .domain.auth import Principal
from .keys import ALGORITHMS, KeySet, KeySetError
from .store import StoreError

T = TypeVar("T")
CLI_PRINCIPAL = Principal(kind="cli", id="cli", role="system", display_name="command line")


class CliError(Exception):
    """A one-line failure of a command."""


def _settings(args: argparse.Namespace) -> config.Settings:
    settings = config.load(args.config)
    if getattr(args, "host", None):
        settings.server.host = args.host
    if getattr(args, "port", None) is not None:
        settings.server.port = args.port
    return settings


def _prepare(settings: config.Settings) -> bootstrap.FirstStart:
    """First-start setup for a command other than ``serve``.

    What it generated is shown now, on stderr (stdout stays the command's
    output): the API key and demo passwords are never shown again.
    """
    first = bootstrap.prepare(settings, int(time.time()))
    if first.api_key:
        print(f"API key (saved in {first.api_key_path}, shown only now): {first.api_key}", file=sys.stderr)
    print_logins(first.demo_logins, file=sys.stderr)
    return first


def _services(args: argparse.Namespace):
    from .services import build_services

    settings = _settings(args)
    _prepare(settings)
    return build_services(settings)


def _wait(coro: Coroutine[Any, Any, T]) -> T:
    """Run one store-backed operation to its end from the command line."""
    return asyncio.run(coro)


def _check_listen(host: str, port: int) -> None:
    """Fail before a first start generates passwords it could then never show."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    settings = _settings(args)
    _check_listen(settings.server.host, settings.server.port)
    first = bootstrap.prepare(settings, int(time.time()))
    return serve(settings, first)


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    problems = []
    if settings.keys_dir.joinpath("keyset.json").exists():
        try:
            KeySet.open(settings.keys_dir)
        except KeySetError as exc:
            problems.append(str(exc))
    if problems:
        raise CliError(problems[0])
    print(f"config OK: {settings.source}")
    print(f"  listens on {settings.server.host}:{settings.server.port}, links use {settings.base_url}")
    for line in _web_summary(settings):
        print(f"  {line}")
    print(f"  data in {settings.data_dir}, database {settings.store_path}, keys {settings.keys_dir}")
    print(f"  tokens {settings.tokens.algorithm}, iss={settings.tokens.issuer}, aud={settings.tokens.audience}")
    ice = len(settings.ice.stun_urls) + len(settings.ice.turn_urls)
    print(f"  ICE servers: {ice}, TURN secret: {'set' if settings.turn_secret else 'not set'}")
    unset = settings.privacy.placeholders()
    print(f"  data notice: records kept {settings.privacy.records_retention_days} days, audit "
          f"{settings.audit.retention_days} days; "
          + (f"EXAMPLE details still in [privacy] {', '.join(unset)}" if unset else "controller and DPO set"))
    print(f"  staff sign-in: local accounts {'on' if settings.auth.local_accounts else 'off'}, "
          f"{len(settings.oidc)} OpenID Connect provider(s)")
    base = settings.base_url
    for name, p in settings.oidc.items():
        print(f"  oidc {name} ({p.display_name}): issuer {p.issuer}, client {p.client_id}, {len(p.roles)} role entries")
        print(f"    register there: redirect URI {base}/signin/oidc/{name}/callback")
        print(f"                    post-logout redirect URI {base}/signin/oidc/signed-out")
        print(f"                    back-channel logout URI {base}/signin/oidc/{name}/backchannel-logout")
    if getattr(args, "online", False):
        for name, p in settings.oidc.items():
            print(f"  oidc {name}: " + _wait(_probe_provider(name, p)))
    return 0


async def _probe_provider(name: str, provider: config.OidcProviderSettings) -> str:
    """Fetch the discovery document and the key set: proves the provider is reachable and agrees on its issuer."""
    from .domain.oidc import OidcError, ProviderClient
    client = ProviderClient(provider)
    try:
        found = await client.discovery()
        keys = await client.keys()
    except OidcError as exc:
        evidence = f" ({exc.evidence})" if exc.evidence else ""
        raise CliError(f"oidc {name}: {exc.code}: {exc.detail}{evidence}") from None
    return (f"reachable, {len(keys.keys)} signing key(s), end-session "
            f"{'offered' if found.end_session_endpoint else 'not offered'}, back-channel logout "
            f"{'supported' if found.backchannel_logout else 'not supported'}")


def _web_summary(settings: Any) -> list[str]:
    """How people reach the server: its own HTTPS (certificate loaded), or behind which proxies."""
    server = settings.server
    if server.tls_cert_file:
        from .tls import certificate_summary
        https = f"HTTPS: served by this server, certificate loads ({certificate_summary(server.tls_cert_file)})"
    elif settings.base_url.startswith("https://"):
        https = "HTTPS: terminated by a proxy in front (public_url is https)"
    else:
        https = "HTTPS: none (plain HTTP: cameras only work on localhost; see README, Production)"
    proxies = ", ".join(server.trusted_proxies) if server.trusted_proxies else "none (X-Forwarded-* ignored)"
    hsts = f"HSTS max-age {server.hsts_seconds} s" if server.hsts_seconds else "no HSTS"
    return [https + f", {hsts}",
            f"trusted proxies: {proxies}",
            f"connections: request head/idle {server.idle_timeout_seconds:g} s, body "
            f"{server.body_timeout_seconds:g} s, at most {server.max_connections_per_client} per client"]


def cmd_create_room(args: argparse.Namespace) -> int:
    svc = _services(args)
    try:
        room = _wait(svc.consultations.create(
            CLI_PRINCIPAL, title=args.title, scheduled_start=parse_time(args.start, "--start"),
            scheduled_end=parse_time(args.end, "--end"),
            waiting_room=None if args.waiting_room is None else args.waiting_room,
            max_participants=args.max_participants, now=svc.now()))
        if args.json:
            print(json.dumps(room_json(room), indent=2))
        else:
            print(f"Raum angelegt / room created: {room.id}")
            print(f"  {room.title}  {iso(room.scheduled_start) or ''} - {iso(room.scheduled_end) or ''}")
            print(f"  waiting room: {'on' if room.waiting_room else 'off'}, max {room.max_participants}")
    finally:
        svc.close()
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    svc = _services(args)
    if args.base_url:  # the server runs with ``serve --port`` or behind a proxy: links must name that address
        svc.settings.server.public_url = args.base_url.rstrip("/")
    try:
        single_use = None if args.single_use is None else args.single_use
        invite = _wait(svc.consultations.invite(CLI_PRINCIPAL, args.room, role=Role(args.role), name=args.name,
                                                lifetime=args.lifetime, single_use=single_use, now=svc.now()))
        if args.json:
            print(json.dumps({"jti": invite.jti, "token": invite.token, "join_url": invite.join_url,
                              "not_before": iso(invite.not_before), "expires_at": iso(invite.expires_at),
                              "single_use": invite.single_use}, indent=2))
        else:
            print(invite.join_url)
            print(f"  valid {iso(invite.not_before)} to {iso(invite.expires_at)}"
                  f"{', single use' if invite.single_use else ''}; id {invite.jti}", file=sys.stderr)
            if not svc.settings.server.public_url:
                print(f"  the link names {svc.settings.base_url} ([server] port); a server started elsewhere "
                      "(serve --port, a proxy): --base-url https://host or set [server] public_url", file=sys.stderr)
    finally:
        svc.close()
    return 0


def cmd_end_room(args: argparse.Namespace) -> int:
    svc = _services(args)
    try:
        _wait(svc.consultations.end(CLI_PRINCIPAL, args.room, reason="api", now=svc.now()))
        print(f"ended {args.room}")
    finally:
        svc.close()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the store's schema to this server's version (PostgreSQL: required before the first start)."""
    settings = _settings(args)
    if settings.store.url:
        from .store.postgres.schema import describe_url, migrate
        applied = migrate(settings.store_url)
        where = f"PostgreSQL {describe_url(settings.store_url)}"
    else:
        from .store.sqlite.schema import apply, connect
        conn = connect(settings.store_path, synchronous=settings.store.synchronous, migrate=None)
        try:
            applied = apply(conn)
        finally:
            conn.close()
        where = f"SQLite {settings.store_path}"
    if applied:
        print(f"{where}: applied migration{'s' if len(applied) > 1 else ''} {', '.join(map(str, applied))}")
    else:
        print(f"{where}: schema is current")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.keys_command == "rotate":
        alg = args.alg or settings.tokens.algorithm
        if not settings.keys_dir.joinpath("keyset.json").exists():
            key = KeySet.open(settings.keys_dir, create_alg=alg).active
        else:
            key = KeySet.open(settings.keys_dir).rotate(alg)
        print(f"new active key {key.kid} ({key.alg}); older keys keep verifying until removed")
        return 0
    keyset = KeySet.open(settings.keys_dir)
    if args.keys_command == "remove":
        keyset.remove(args.kid)
        print(f"removed {args.kid}; tokens it signed no longer verify")
        return 0
    for key in keyset.keys():
        print(f"{key.kid}  {key.alg:6}  created {iso(key.created_at)}  {'active' if key.active else 'verify-only'}")
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from .services import open_settings_store

    settings = _settings(args)
    first = bootstrap.prepare(settings, int(time.time()))
    if first.api_key:
        print(f"API key (saved in {first.api_key_path}, shown only now): {first.api_key}")
    store = open_settings_store(settings)
    try:
        seeded = store.blocking.write(partial(demo.seed, now=int(time.time()), reset_passwords=args.reset_passwords))
        # A first start may have seeded already: show its passwords, unless reset since.
        logins = list({login.username: login for login in [*first.demo_logins, *seeded]}.values())
    finally:
        store.close()
    if not logins:
        print("demo data is complete; nothing changed (new passwords: ./run roomserver seed-demo --reset-passwords)")
    print_logins(logins)
    return 0


def _i18n_paths(args: argparse.Namespace) -> dict[str, Path]:
    from . import i18n, translations

    return {"catalog_dir": Path(args.catalogs) if args.catalogs else i18n.CATALOG_DIR,
            "sources_path": Path(args.sources) if args.sources else translations.SOURCES_PATH}


def cmd_i18n_stale(args: argparse.Namespace) -> int:
    """What needs translating: exit 1 while anything is stale, so a CI step can use it."""
    from . import translations

    paths = _i18n_paths(args)
    have = translations.languages(paths["catalog_dir"])
    if args.lang and args.lang not in have:
        raise CliError(f"there is no catalog for {args.lang!r}; languages: {', '.join(have)}")
    found = translations.stale(langs=[args.lang] if args.lang else None, **paths)
    if args.json:
        print(json.dumps([{"lang": s.lang, "key": s.key, "reason": s.reason, "german": s.german,
                           "german_then": s.german_then, "translation": s.translation} for s in found],
                         ensure_ascii=False, indent=2))
        return 1 if found else 0
    if not found:
        print("every translation was made from the German text that is there now")
        return 0
    for s in found:
        print(f"{s.lang}  {s.key}: {translations.REASONS[s.reason]}")
        if s.german_then is not None and s.german_then != s.german:
            print(f"    German then: {s.german_then}")
        print(f"    German now:  {s.german}")
        if s.translation is not None:
            print(f"    {s.lang:<11} {s.translation}")
    counts = {lang: sum(1 for s in found if s.lang == lang) for lang in dict.fromkeys(s.lang for s in found)}
    print(f"{len(found)} to revisit: " + ", ".join(f"{lang} {n}" for lang, n in counts.items())
          + "; afterwards record them with: roomserver i18n-stamp LANG KEY... (or --revisited)")
    return 1


def cmd_i18n_stamp(args: argparse.Namespace) -> int:
    from . import translations

    if not args.keys and not args.revisited:
        raise CliError("name the keys you revisited, or pass --revisited (every translation edited since it was "
                       "last recorded)")
    try:
        done = translations.stamp(args.lang, args.keys or None, revisited=args.revisited, **_i18n_paths(args))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(f"{args.lang}: recorded {len(done)} translation(s) as made from the current German text")
    for key in done:
        print(f"  {key}")
    return 0


def print_logins(logins: Sequence[demo.DemoLogin], file: TextIO | None = None) -> None:
    if not logins:
        return
    print("Demo-Anmeldungen / demo sign-ins (shown only now, write them down):", file=file)
    for login in logins:
        print(f"  {login.role:12} {login.username:10} {login.password}", file=file)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roomserver",
        description="Room server for networked hybrid counselling: video rooms, tokens, signalling.")
    parser.add_argument("--version", action="version", version=f"roomserver {__version__}")
    config_help = "settings file (default: $ROOMSERVER_CONFIG, else config/roomserver.toml)"
    parser.add_argument("--config", metavar="PATH", help=config_help)
    # --config is also accepted after the command ('roomserver check-config --config PATH');
    # SUPPRESS keeps a value given before the command when none is given after it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(group: argparse._SubParsersAction, name: str, **kwargs: str) -> argparse.ArgumentParser:
        return group.add_parser(name, parents=[common], **kwargs)

    p = command(sub, "serve", help="run the server (creates keys and demo data on first start)")
    p.add_argument("--host", help="listen address (overrides [server] host)")
    p.add_argument("--port", type=int, help="listen port (overrides [server] port)")
    p.set_defaults(func=cmd_serve)

    p = command(sub, "check-config", help="validate the settings and print a summary")
    p.add_argument("--online", action="store_true",
                   help="also fetch each OpenID Provider's discovery document and keys (exit 1 if one fails)")
    p.set_defaults(func=cmd_check_config)

    p = command(sub, "create-room", help="create a consultation room")
    p.add_argument("--title", required=True, help="title staff see, e.g. 'Beratung 10:30'")
    p.add_argument("--start", help="scheduled start, RFC 3339 (e.g. 2026-11-25T10:30:00+01:00)")
    p.add_argument("--end", help="scheduled end, RFC 3339 (default: start + rooms.default_duration_minutes)")
    p.add_argument("--waiting-room", dest="waiting_room", action="store_true", default=None,
                   help="citizens wait until admitted (default from config)")
    p.add_argument("--no-waiting-room", dest="waiting_room", action="store_false")
    p.add_argument("--max-participants", type=int, help="2 to 6 endpoints")
    p.add_argument("--json", action="store_true", help="print the room as JSON")
    p.set_defaults(func=cmd_create_room)

    p = command(sub, "invite", help="mint a join link for one person")
    p.add_argument("room", help="room id (r_...)")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--name", required=True, help="display name shown in the room")
    p.add_argument("--lifetime", type=int, metavar="SECONDS", help="valid from now for this long")
    p.add_argument("--single-use", dest="single_use", action="store_true", default=None)
    p.add_argument("--multi-use", dest="single_use", action="store_false")
    p.add_argument("--json", action="store_true", help="print token and link as JSON")
    p.add_argument("--base-url", metavar="URL", help="the address the link names (default: [server] public_url, "
                   "else host and port of the config)")
    p.set_defaults(func=cmd_invite)

    p = command(sub, "end-room", help="end a room: disconnect everyone, withdraw every token")
    p.add_argument("room", help="room id (r_...)")
    p.set_defaults(func=cmd_end_room)

    p = command(sub, "keys", help="list, rotate or remove token signing keys")
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    command(keys, "list", help="show the key set")
    k = command(keys, "rotate", help="add a new active key; older keys keep verifying")
    k.add_argument("--alg", choices=ALGORITHMS, help="algorithm (default from config)")
    k = command(keys, "remove", help="remove a retired key; tokens it signed stop working")
    k.add_argument("kid")
    p.set_defaults(func=cmd_keys)

    p = command(sub, "migrate", help="bring the database schema up to date (PostgreSQL: before the first start)")
    p.set_defaults(func=cmd_migrate)

    p = command(sub, "seed-demo", help="create the demo departments and accounts (prints passwords once)")
    p.add_argument("--reset-passwords", action="store_true", help="give existing demo accounts new passwords")
    p.set_defaults(func=cmd_seed_demo)

    i18n_files = argparse.ArgumentParser(add_help=False)
    i18n_files.add_argument("--catalogs", metavar="DIR", help="catalog folder (default: web/static/i18n)")
    i18n_files.add_argument("--sources", metavar="PATH", help="source record (default: web/i18n-sources.json)")
    p = sub.add_parser("i18n-stale", parents=[common, i18n_files],
                       help="list the translations made from an older German text, or missing")
    p.add_argument("--lang", help="only this language (en, tr, ar, uk, ru, fa)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_i18n_stale)

    p = sub.add_parser("i18n-stamp", parents=[common, i18n_files],
                       help="record that translations were revisited against the current German")
    p.add_argument("lang", help="the language whose translations were revisited")
    p.add_argument("keys", nargs="*", metavar="KEY", help="the keys revisited")
    p.add_argument("--revisited", action="store_true",
                   help="every key whose translation changed since it was last recorded, or has no record")
    p.set_defaults(func=cmd_i18n_stamp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (config.ConfigError, StoreError) as exc:  # the settings, or the database they name, are unusable
        print(f"roomserver: {exc}", file=sys.stderr)
        return 2
    except (CliError, KeySetError) as exc:
        print(f"roomserver: {exc}", file=sys.stderr)
        return 1
    except RoomServerError as exc:
        print(f"roomserver: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"roomserver: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
