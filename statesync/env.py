"""Typed readers for environment variables.

Every reader fails at start-up with ImproperlyConfigured naming the variable,
so a typo in production is a crash with a message, never a silent default.
Reading has no side effect: nothing here writes a file or starts a process at
import (kept_secret writes its file when the secret is first used).
"""

from __future__ import annotations

import functools
import os
import secrets
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import lazy

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_secret(name: str, default: str = "") -> str:
    """NAME, or the text of the file NAME_FILE names (Docker and Kubernetes mount secrets as files).

    Setting both is refused rather than one silently winning: a deployment that
    moved a secret into a file and forgot the old variable would otherwise run
    on whichever it did not mean. The file's line end is not part of the secret;
    a file that is missing, unreadable or empty stops start-up, naming the variable.
    """
    path = os.environ.get(f"{name}_FILE", "")
    if not path:
        return os.environ.get(name, default)
    if os.environ.get(name):
        raise ImproperlyConfigured(f"Set {name} or {name}_FILE, not both.")
    try:
        value = Path(path).read_text().rstrip("\r\n")
    except OSError as e:
        raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {e.strerror}.") from None
    if not value:
        raise ImproperlyConfigured(f"{name}_FILE={path!r} is empty.")
    return value


@functools.cache
def _kept_secret(path: str) -> str:
    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        draft = file.with_name(f".{file.name}.{os.getpid()}")
        draft.write_text(secrets.token_urlsafe(50))
        try:
            # link() creates the name only if it is free: of two processes that
            # need a key at once, one writes it and both read the same key.
            os.link(draft, file)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return file.read_text().strip()


def kept_secret(path: Path) -> str:
    """A secret generated once into `path` and read from it ever after.

    Lazy: the file (and its folder) is written when something first uses the
    secret (signing a session), not when settings are imported.
    """
    return lazy(_kept_secret, str)(str(path))


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false.")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is above the maximum of {maximum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_proxy_header(name: str) -> tuple[str, str] | None:
    """`X-Forwarded-Proto: https` (the header a TLS-terminating proxy sets, and the value
    meaning HTTPS) as Django's SECURE_PROXY_SSL_HEADER tuple; unset is None."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    header, sep, value = (part.strip() for part in raw.partition(":"))
    if (
        not sep
        or not value
        or not header
        or not all(c.isascii() and (c.isalnum() or c == "-") for c in header)
    ):
        raise ImproperlyConfigured(
            f"{name}={raw!r}: write the header and its HTTPS value, as X-Forwarded-Proto: https."
        )
    return ("HTTP_" + header.upper().replace("-", "_"), value)


def parse_database_url(name: str, url: str) -> dict:
    """Turn postgres://user:pass@host:port/db or sqlite:///path into a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        db = parts.path.lstrip("/")
        if not db:
            raise ImproperlyConfigured(f"{name}={url!r} names no database after the host.")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name}={url!r} has a port that is not a number.") from None
        return {
            "ENGINE": "statesync.postgresql",  # Django's, without JIT (statesync/postgresql/base.py)
            "NAME": unquote(db),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": 0,
        }
    if parts.scheme == "sqlite":
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise ImproperlyConfigured(f"{name}={url!r}: write sqlite:///relative/or//absolute/path.")
        return sqlite_database(path)
    raise ImproperlyConfigured(
        f"{name}={url!r} has an unsupported scheme {parts.scheme!r}: use postgres:// or sqlite:///."
    )


def database_url(entry: dict) -> str:
    """The URL parse_database_url reads back into this DATABASES entry (what child processes are given)."""
    if entry["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{entry['NAME']}"
    # Quoted as parse_database_url unquotes: a password may hold "@" or ":".
    auth = quote(entry["USER"], safe="") + (
        f":{quote(entry['PASSWORD'], safe='')}" if entry["PASSWORD"] else ""
    )
    host = f"[{entry['HOST']}]" if ":" in entry["HOST"] else entry["HOST"]
    port = f":{entry['PORT']}" if entry["PORT"] else ""
    return f"postgres://{auth}@{host}{port}/{quote(entry['NAME'], safe='')}"


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child process (a worker, a web server): pointed at the
    databases this process is connected to (under the tests, the test databases), its Redis
    and its queue, DEBUG off; `extra` sets more.

    On the embedded default the child is given no REDIS_URL: it finds the same server from
    the same DATA_DIR and, as any process, starts it if it is the first to need it.
    """
    from django.conf import settings
    from django.db import connections

    env = dict(
        os.environ,
        DATABASE_URL=database_url(connections["default"].settings_dict),
        STATE_DATABASE_URL=database_url(connections["state"].settings_dict),
        DATA_DIR=str(settings.DATA_DIR),
        DEBUG="false",
        RQ_QUEUE=settings.RQ_QUEUE,
    )
    if not settings.EMBEDDED_REDIS:
        env["REDIS_URL"] = settings.REDIS_URL
    env.update(extra)
    # A NAME_FILE inherited for a variable set here would make env_secret refuse both.
    for name in ("DATABASE_URL", "STATE_DATABASE_URL", "REDIS_URL"):
        if name in env:
            env.pop(f"{name}_FILE", None)
    return env


def sqlite_database(path: str) -> dict:
    return {
        # Django's SQLite backend, which also makes its file's folder on first connect (statesync/sqlite3/).
        "ENGINE": "statesync.sqlite3",
        "NAME": path,
        # A worker and the web process share the file: wait for the lock
        # rather than failing with "database is locked".
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL;",
        },
        "TEST": {"NAME": str(path).replace(".sqlite3", "") + "-test.sqlite3"},
    }


def database_identity(entry: dict) -> tuple:
    """What makes two DATABASES entries the same physical database."""
    if entry["ENGINE"].endswith("sqlite3"):
        return ("sqlite", os.path.abspath(str(entry["NAME"])))
    return ("postgres", entry.get("HOST") or "localhost", entry.get("PORT") or "5432", entry["NAME"])
