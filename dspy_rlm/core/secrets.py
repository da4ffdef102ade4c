"""The secrets the host holds, and how to scrub them from text that leaves the host.

An API key must never reach the sandbox, a prompt, a trajectory, a trace, a log line or an
exception message, even when a provider echoes it in an error (`401 ... Bearer sk-...`).
Every host text crossing one of those boundaries goes through `scrub`, which replaces:

- the values this process holds: what the LMs an RLM call uses were given (`api_key`, the
  values of credential headers such as `Authorization` or `Cookie`, secret-looking query
  parameters and the password of `api_base`), and environment variables whose names look
  like keys, tokens, secrets or passwords (`OPENAI_API_KEY`, `HF_TOKEN`, ...);
- whatever the value, `Bearer ...` / `Basic ...` credentials and `sk-...`-shaped keys.

Values shorter than `MIN_SECRET_CHARS` are not scrubbed by value (a key "sim" would blank every
"sim"). LMs are remembered for the life of the process (`remember_lms`), which only ever scrubs
more. The module reads LMs by duck typing (`lm.kwargs`), so it imports nothing of DSPy.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dspy_rlm.observability.tracing import add_text_filter
from dspy_rlm.sandbox.hostcalls import named_error

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 8
# Names of settings, headers, query parameters and environment variables that hold secrets.
SECRET_NAME = re.compile(
    r"api[_-]?key|secret|token(?!s|iz)|passw(or)?d|authori[sz]ation|bearer|credential|cookie"
    r"|(^|[_-])(key|sig|auth)$",
    re.IGNORECASE,
)
_SHAPED = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}|\bsk-[A-Za-z0-9_-]{16,}", re.IGNORECASE)
_URL_KEYS = ("api_base", "base_url", "url", "endpoint")

_known: frozenset[str] = frozenset()  # replaced, never changed: scrub reads it without the lock
_lock = threading.Lock()


# -- what the host holds ------------------------------------------------------------


def secret_values(settings: Mapping[str, Any]) -> set[str]:
    """The secret values in one LM's settings (`dspy.LM(...).kwargs`): keys, credential headers,
    and the secret parts of URLs."""
    found: set[str] = set()
    for name, value in settings.items():
        if isinstance(value, Mapping):
            found |= secret_values(value) if not _is_headers(name) else _header_values(value)
        elif isinstance(value, str) and SECRET_NAME.search(str(name)):
            found |= {value, *_credential_parts(value)}
        elif isinstance(value, str) and name in _URL_KEYS:
            found |= set(_url_secrets(value))
    return {value for value in found if len(value) >= MIN_SECRET_CHARS}


def environment_secrets(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Values of environment variables whose names look like keys, tokens, secrets or passwords."""
    return _secrets_among(tuple((os.environ if environ is None else environ).items()))


@functools.lru_cache(maxsize=4)
def _secrets_among(variables: tuple[tuple[str, str], ...]) -> frozenset[str]:
    return frozenset(value for name, value in variables if len(value) >= MIN_SECRET_CHARS and SECRET_NAME.search(name))


def remember_lms(*lms: Any) -> None:
    """Remember the secrets of these LMs (any object with a `kwargs` dict; others are skipped)."""
    found: set[str] = set()
    for lm in lms:
        settings = getattr(lm, "kwargs", None)
        if isinstance(settings, Mapping):
            found |= secret_values(settings)
    global _known
    if found - _known:
        with _lock:
            _known = _known | found


def secret_settings(settings: Mapping[str, Any], where: str = "") -> list[str]:
    """Where a config holds secrets (for refusing to store it): `lm_kwargs.headers.Cookie`, ..."""
    problems: list[str] = []
    for name, value in settings.items():
        path = f"{where}.{name}" if where else str(name)
        if SECRET_NAME.search(str(name)):
            problems.append(path)
        elif isinstance(value, Mapping):
            problems += secret_settings(value, path)
        elif isinstance(value, str) and name in _URL_KEYS and _url_secrets(value):
            problems.append(f"{path} (its query string or user info)")
    return problems


def _is_headers(name: Any) -> bool:
    return str(name).lower() in ("headers", "extra_headers", "default_headers")


def _header_values(headers: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    for name, value in headers.items():
        if isinstance(value, str) and SECRET_NAME.search(str(name)):
            found |= {value, *_credential_parts(value)}
    return found


def _credential_parts(value: str) -> list[str]:
    """`Bearer abc` also holds `abc`; `a=1; session=xyz` (a cookie) holds `xyz`."""
    parts = value.split(None, 1)[1:] if " " in value.strip() else []
    parts += [item.split("=", 1)[1].strip() for item in value.split(";") if "=" in item]
    return [part for part in parts if part]


def _url_secrets(url: str) -> list[str]:
    try:
        parsed = urlsplit(url)
    except ValueError:
        return []
    found = [value for name, value in parse_qsl(parsed.query) if SECRET_NAME.search(name) or name.lower() == "code"]
    return found + ([parsed.password] if parsed.password else [])


# -- scrubbing --------------------------------------------------------------------------


def scrub(text: str) -> str:
    """`text` with every secret the host holds (and every credential-shaped string) replaced."""
    if not isinstance(text, str) or not text:
        return text
    pattern = _pattern(_known, environment_secrets())
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return _SHAPED.sub(_shaped_replacement, text)


def scrub_value(value: Any) -> Any:
    """`scrub` applied to every string inside dicts, lists and tuples."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: scrub_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(item) for item in value]
    return value


def error_text(error: BaseException) -> str:
    """`Type: message` of an exception, scrubbed: the one way host errors are written for others."""
    return scrub(f"{type(error).__name__}: {error}")


def guarded(function: Callable[..., Any]) -> Callable[..., Any]:
    """A host function whose exceptions carry scrubbed text (same type name) into the sandbox."""
    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def acall(*args: Any, **kwargs: Any) -> Any:
            try:
                return await function(*args, **kwargs)
            except Exception as error:
                raise scrubbed(error) from None
        return acall

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as error:
            raise scrubbed(error) from None
    return call


def scrubbed(error: Exception) -> Exception:
    """`error` itself if neither its text nor that of any exception chained to it holds a secret,
    else a same-named exception with the scrubbed text and no chain (raise others `from` it, so no
    traceback or trace shows the secret as the cause)."""
    if all(scrub(str(link)) == str(link) for link in _chain(error)):
        return error
    return named_error(type(error).__name__)(scrub(str(error)))


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and not any(link is known for known in seen):  # chains can loop
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen


@functools.lru_cache(maxsize=16)
def _pattern(*groups: frozenset[str]) -> re.Pattern[str] | None:
    values = sorted(set().union(*groups), key=len, reverse=True)  # the longest first: no half-scrubbed key
    return re.compile("|".join(re.escape(value) for value in values)) if values else None


def _shaped_replacement(match: re.Match[str]) -> str:
    scheme = match.group("scheme")
    return f"{scheme} {REDACTED}" if scheme else REDACTED


add_text_filter(scrub)  # every span value of a trace holding an RLM call is scrubbed too
