"""Keeping secrets out of files and logs: one redaction for command lines, URLs and log lines.

Keys reach distill three ways: inside a URL (`https://user:KEY@host/v1`, `...?api_key=KEY`), in the
environment (OPENAI_API_KEY and friends), and as an option value (`--api-key KEY`, a header such as
`Authorization: Bearer KEY`). Whatever is written to config.json, pipeline.json, metrics.json or printed on
stderr goes through `redact` first.
"""

from __future__ import annotations

import os
import re
from typing import Iterable

MASK = "***"
# Environment variables whose values are secrets wherever they show up.
SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.I)
# Options whose value is a secret: --api-key KEY, --header "Authorization: ...", --token=...
SECRET_OPTION = re.compile(r"^--?[\w-]*(key|token|secret|password|passwd|auth|header)[\w-]*$", re.I)
URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
# Authorization headers and bearer tokens written inline anywhere in a line.
INLINE = [
    re.compile(r"(?i)(authorization\s*[:=]\s*)(\S+(\s+\S+)?)"),
    re.compile(r"(?i)(bearer\s+)(\S+)"),
    re.compile(r"(?i)((?:api[_-]?key|token|secret|password)\s*[:=]\s*)([^\s&,;]+)"),
    re.compile(r"\b(sk-)[A-Za-z0-9_-]{8,}"),
]


def redact_url(url: str | None) -> str | None:
    """A URL fit for files and logs: no user:password@ and no query string (keys hide there)."""
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
    except ValueError:  # a malformed port or bracket: keep only what cannot hold a key
        return url.split("?", 1)[0].split("@")[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def env_secrets(environ: dict[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    return sorted({v for k, v in env.items() if SECRET_ENV.search(k) and len(v) >= 6}, key=len, reverse=True)


def redact(text: str, environ: dict[str, str] | None = None) -> str:
    """A line with every secret we can recognise replaced by ***."""
    if not text:
        return text
    for value in env_secrets(environ):
        text = text.replace(value, MASK)
    text = URL.sub(lambda m: redact_url(m.group(0)) or "", text)
    for pattern in INLINE:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact_argv(argv: Iterable[str], environ: dict[str, str] | None = None) -> list[str]:
    """A command line fit for config.json: secret option values masked, URLs and env secrets redacted."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        arg = str(arg)
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        name, eq, _ = arg.partition("=")
        if arg.startswith("-") and SECRET_OPTION.match(name):
            if eq:
                out.append(f"{name}={MASK}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact(arg, environ))
    return out
