"""Typed readers for environment variables.

Every reader fails at start-up with ImproperlyConfigured naming the variable,
so a typo in production is a crash with a message, never a silent default.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


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
            "ENGINE": "django.db.backends.postgresql",
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


def sqlite_database(path: str) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
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
