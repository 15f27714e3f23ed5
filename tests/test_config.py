"""Settings: the shipped file documents every key, the environment overrides any key,
and every kind of bad setting stops the command line with one line that names it.

The refusals run the real command (``python -m roomserver check-config``) in a
subprocess: what is checked is what a person starting the server would see.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from roomserver import config

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "roomserver.toml"


# --- defaults and the shipped file ---------------------------------------------


def test_shipped_file_loads_to_the_built_in_defaults() -> None:
    loaded = config.load(SHIPPED, env={})
    defaults = config.Settings()
    for section in config.SECTIONS:
        assert getattr(loaded, section) == getattr(defaults, section), section
    assert loaded.source == str(SHIPPED)
    assert loaded.turn_secret is None and loaded.api_keys is None


def test_no_file_at_all_gives_the_built_in_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config/roomserver.toml here
    loaded = config.load(env={})
    assert loaded.source == "built-in defaults"
    assert loaded.server == config.ServerSettings()
    assert loaded.base_url == "http://127.0.0.1:8080"
    assert loaded.store_path == Path("data") / "roomserver.sqlite3"


def test_every_key_is_in_the_shipped_file_with_its_default_and_a_comment() -> None:
    parsed = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    documented = config.documented_keys()
    assert set(parsed) == set(documented)
    for section, keys in documented.items():
        assert set(parsed[section]) == set(keys), section
        start = lines.index(f"[{section}]")
        for key, (default, doc) in keys.items():
            assert parsed[section][key] == default, f"[{section}] {key}"
            assert doc, f"[{section}] {key} has no doc"
            at = next(i for i in range(start, len(lines)) if lines[i].startswith(f"{key} = "))
            assert lines[at - 1] == f"# {doc}", f"[{section}] {key} is not documented by the line above it"


# --- environment overrides -----------------------------------------------------


@pytest.mark.parametrize(("var", "text", "section", "key", "expected"), [
    ("ROOMSERVER_SERVER_PORT", "9001", "server", "port", 9001),
    ("ROOMSERVER_SIGNALLING_HEARTBEAT_SECONDS", "2.5", "signalling", "heartbeat_seconds", 2.5),
    ("ROOMSERVER_SIGNALLING_RATE_PER_SECOND", "7", "signalling", "rate_per_second", 7.0),
    ("ROOMSERVER_ROOMS_WAITING_ROOM", "false", "rooms", "waiting_room", False),
    ("ROOMSERVER_DEMO_SEED_ON_FIRST_START", "no", "demo", "seed_on_first_start", False),
    ("ROOMSERVER_TOKENS_ISSUER", "kreis-beispiel", "tokens", "issuer", "kreis-beispiel"),
    ("ROOMSERVER_TOKENS_ALGORITHM", "ES256", "tokens", "algorithm", "ES256"),
    ("ROOMSERVER_ICE_STUN_URLS", "stun:a.example:3478, stun:b.example:3478", "ice", "stun_urls",
     ["stun:a.example:3478", "stun:b.example:3478"]),
])
def test_env_overrides_each_type(var: str, text: str, section: str, key: str, expected: object) -> None:
    loaded = config.load(SHIPPED, env={var: text})
    value = getattr(getattr(loaded, section), key)
    assert value == expected
    assert type(value) is type(expected)


def test_env_beats_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = 9100\nhost = "0.0.0.0"\n', encoding="utf-8")
    loaded = config.load(path, env={"ROOMSERVER_SERVER_PORT": "9200"})
    assert (loaded.server.port, loaded.server.host) == (9200, "0.0.0.0")


def test_secrets_come_from_env_and_files(tmp_path: Path) -> None:
    secret = tmp_path / "turn-secret"
    secret.write_text("s3cret-from-file\n", encoding="utf-8")
    path = tmp_path / "c.toml"
    path.write_text(f'[ice]\nturn_urls = ["turn:turn.example:3478"]\nturn_secret_file = "{secret}"\n',
                    encoding="utf-8")
    assert config.load(path, env={}).turn_secret == b"s3cret-from-file"
    key = "k" * 20
    loaded = config.load(path, env={"ROOMSERVER_ICE_TURN_SECRET": "from-env",
                                    "ROOMSERVER_AUTH_API_KEYS": f"termine:{key}"})
    assert loaded.turn_secret == b"from-env"
    assert loaded.api_keys == {key: "termine"}


# --- refusals: one line, the key named, exit 2, no traceback --------------------


def check_config(tmp_path: Path, toml: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m roomserver check-config --config <file>`` with a clean environment."""
    path = tmp_path / "roomserver.toml"
    if toml is not None:
        path.write_text(toml, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROOMSERVER_")}
    clean.update({"ROOMSERVER_SERVER_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run([sys.executable, "-m", "roomserver", "check-config", "--config", str(path)],
                          cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert result.stdout == ""


@pytest.mark.parametrize(("toml", "needles"), [
    pytest.param('[server]\nprot = 8080\n', ("prot", "did you mean 'port'"), id="unknown-key"),
    pytest.param('[sever]\nport = 8080\n', ("[sever]", "did you mean 'server'"), id="unknown-section"),
    pytest.param('[server]\nport = "8080"\n', ("port", "integer"), id="wrong-type-int"),
    pytest.param('[rooms]\nwaiting_room = "yes"\n', ("waiting_room", "true or false"), id="wrong-type-bool"),
    pytest.param('[ice]\nstun_urls = "stun:a:3478"\n', ("stun_urls", "list of strings"), id="wrong-type-list"),
    pytest.param('[server]\nport = 70000\n', ("port", "65535", "70000"), id="out-of-range"),
    pytest.param('[rooms]\nmax_participants = 7\n', ("max_participants", "from 2 to 6"), id="out-of-range-rooms"),
    pytest.param('[tokens]\nalgorithm = "RS256"\n', ("algorithm", "'EdDSA'", "RS256"), id="bad-choice"),
    pytest.param('[server]\nport = = 1\n', ("roomserver.toml", "not valid TOML", "line 2"), id="invalid-toml"),
    pytest.param('[ice]\nturn_secret_file = "/nonexistent"\n', ("turn_secret_file", "/nonexistent"),
                 id="missing-secret-file"),
    pytest.param('[ice]\nturn_urls = ["turn:turn.example:3478"]\n', ("turn_urls", "secret"),
                 id="turn-without-secret"),
    pytest.param('[ice]\nturn_secret = "x"\n', ("turn_secret", "secrets do not belong"), id="secret-in-toml"),
    pytest.param('[auth]\napi_keys = "tests:0123456789abcdef"\n', ("api_keys", "secrets do not belong"),
                 id="api-keys-in-toml"),
])
def test_invalid_file_gives_one_line(tmp_path: Path, toml: str, needles: tuple[str, ...]) -> None:
    assert_one_line_refusal(check_config(tmp_path, toml), *needles)


def test_missing_config_file_gives_one_line(tmp_path: Path) -> None:
    result = check_config(tmp_path, None)
    assert_one_line_refusal(result, str(tmp_path / "roomserver.toml"), "does not exist")


@pytest.mark.parametrize(("var", "value", "needles"), [
    ("ROOMSERVER_SERVER_PORT", "abc", ("port", "ROOMSERVER_SERVER_PORT", "abc")),
    ("ROOMSERVER_ROOMS_WAITING_ROOM", "maybe", ("waiting_room", "ROOMSERVER_ROOMS_WAITING_ROOM")),
    ("ROOMSERVER_SIGNALLING_HEARTBEAT_SECONDS", "0", ("heartbeat_seconds", "from 1 to 120")),
    ("ROOMSERVER_TOKENS_ALGORITHM", "none", ("algorithm", "ROOMSERVER_TOKENS_ALGORITHM")),
    ("ROOMSERVER_AUTH_API_KEYS", "tests:short", ("ROOMSERVER_AUTH_API_KEYS", "16 characters")),
])
def test_bad_env_value_gives_one_line(tmp_path: Path, var: str, value: str, needles: tuple[str, ...]) -> None:
    assert_one_line_refusal(check_config(tmp_path, "", **{var: value}), *needles)


def test_a_good_file_passes(tmp_path: Path) -> None:
    result = check_config(tmp_path, SHIPPED.read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config OK")


# --- OpenID Connect providers -----------------------------------------------------

def _oidc_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "oidc.toml"
    path.write_text(body, encoding="utf-8")
    return path


_AGENTUR = ('[oidc.agentur]\ndisplay_name = "Agentur"\nissuer = "https://login.agentur.example/realms/staff"\n'
            'client_id = "roomserver"\nroles = { "beratung" = "counsellor", "abh" = "expert:auslaenderbehoerde" }\n')
_SECRET = {"ROOMSERVER_OIDC_AGENTUR_CLIENT_SECRET": "geheim"}


def test_every_oidc_key_is_documented_in_the_shipped_example() -> None:
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    start = lines.index("# [oidc.agentur]")
    for key, f in config.OIDC_FIELDS.items():
        at = next(i for i in range(start, len(lines)) if lines[i].startswith(f"# {key} = "))
        assert lines[at - 1] == f"# # {f.metadata['doc']}", key
    example = "\n".join(line[2:] for line in lines[start:] if line.startswith("# ") and not line.startswith("# # "))
    parsed = tomllib.loads(example[example.index("[oidc.agentur]"):example.index("and the county")])
    assert set(parsed["oidc"]["agentur"]) == set(config.OIDC_FIELDS)


def test_providers_keep_file_order_and_take_environment_overrides(tmp_path: Path) -> None:
    body = _AGENTUR + _AGENTUR.replace("agentur", "kreis").replace('"Agentur"', '"Kreis"')
    loaded = config.load(_oidc_file(tmp_path, body), env={**_SECRET, "ROOMSERVER_OIDC_KREIS_CLIENT_SECRET": "k",
                                                           "ROOMSERVER_OIDC_KREIS_ROLES": "jc=expert:jobcenter",
                                                           "ROOMSERVER_OIDC_AGENTUR_SCOPES": "openid,groups"})
    assert list(loaded.oidc) == ["agentur", "kreis"]
    assert loaded.oidc["agentur"].client_secret == "geheim" and loaded.oidc["agentur"].scopes == ["openid", "groups"]
    assert loaded.oidc["kreis"].roles == {"jc": "expert:jobcenter"}
    assert "geheim" not in repr(loaded.oidc["agentur"])


def test_the_client_secret_comes_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("aus-der-datei\n", encoding="utf-8")
    loaded = config.load(_oidc_file(tmp_path, _AGENTUR + f'client_secret_file = "{secret}"\n'), env={})
    assert loaded.oidc["agentur"].client_secret == "aus-der-datei"


@pytest.mark.parametrize("extra, env, says", [
    ('client_secret = "x"\n', _SECRET, "[oidc.agentur] client_secret: secrets do not belong in the config file"),
    ("", {}, "[oidc.agentur] has no client secret"),
    ('scope = ["openid"]\n', _SECRET, "unknown key [oidc.agentur] scope (did you mean 'scopes'?)"),
    ('algorithms = ["RS256", "HS256"]\n', _SECRET, "algorithms entry 'HS256' is not an asymmetric"),
    ('algorithms = ["none"]\n', _SECRET, "algorithms entry 'none' is not an asymmetric"),
    ('token_auth = "private_key_jwt"\n', _SECRET, "[oidc.agentur] token_auth must be one of"),
], ids=["secret-in-file", "no-secret", "typo", "hs256", "none", "token-auth"])
def test_a_wrong_provider_setting_names_the_key(tmp_path: Path, extra: str, env: dict, says: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(_oidc_file(tmp_path, _AGENTUR + extra), env=env)
    assert says in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("old, new, says", [
    ("https://login.agentur.example/realms/staff", "http://login.agentur.example/realms/staff", "issuer must be an https://"),
    ('"abh" = "expert:auslaenderbehoerde"', '"abh" = "expert"', "an expert needs a department"),
    ('"beratung" = "counsellor"', '"beratung" = "chef"', "the role must be one of"),
    ('client_id = "roomserver"\n', "", "[oidc.agentur] client_id is required"),
    ("[oidc.agentur]", "[oidc.Agentur]", "a provider name must be"),
], ids=["http-issuer", "expert-no-dept", "unknown-role", "no-client-id", "bad-name"])
def test_an_unsound_provider_is_refused(tmp_path: Path, old: str, new: str, says: str) -> None:
    with pytest.raises(config.ConfigError) as caught:
        config.load(_oidc_file(tmp_path, _AGENTUR.replace(old, new)), env=_SECRET)
    assert says in str(caught.value)


def test_http_issuer_is_allowed_on_loopback_only(tmp_path: Path) -> None:
    body = _AGENTUR.replace("https://login.agentur.example", "http://127.0.0.1:9000")
    assert config.load(_oidc_file(tmp_path, body), env=_SECRET).oidc["agentur"].issuer.startswith("http://127.")


def test_local_accounts_off_needs_a_provider(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="local_accounts = false needs at least one"):
        config.load(_oidc_file(tmp_path, "[auth]\nlocal_accounts = false\n"), env={})
    loaded = config.load(_oidc_file(tmp_path, "[auth]\nlocal_accounts = false\n" + _AGENTUR), env=_SECRET)
    assert not loaded.auth.local_accounts
