"""The answer cache: every teacher answer is stored the moment it arrives, so nothing is paid for twice.

Keyed by a hash of (teacher identity, endpoint kind, template version, the full rendered request) -- the
request already contains the instructions, labels, descriptions, examples and the text, so a change to
any of them is a different key. We store the raw answer (top logprobs or text), not the parsed label, so
better parsing later needs no new calls. SQLite in WAL mode survives `kill -9` with every committed row.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

from distill.errors import BadInput


def default_cache_path() -> Path:
    env = os.environ.get("DISTILL_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "distill" / "teacher.sqlite"


def request_key(teacher_id: str, request: dict[str, Any]) -> str:
    blob = json.dumps({"teacher": teacher_id, "request": request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class AnswerCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL, created REAL NOT NULL)"
            )
            db.commit()
        except (OSError, sqlite3.Error) as e:
            if db is not None:
                db.close()
            raise BadInput(
                f"cannot use the answer cache at {self.path} ({e}); is it a distill cache? Pass --cache PATH"
            ) from None
        self.db = db

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for key, answer in self.db.execute(f"SELECT key, answer FROM answers WHERE key IN ({marks})", chunk):
                found[key] = json.loads(answer)
        return found

    def get(self, key: str) -> dict[str, Any] | None:
        return self.get_many([key]).get(key)

    def put(self, key: str, answer: dict[str, Any]) -> None:
        # Committed per answer on purpose: a crash loses at most the requests still in flight.
        self.db.execute(
            "INSERT OR REPLACE INTO answers (key, answer, created) VALUES (?, ?, ?)",
            (key, json.dumps(answer, ensure_ascii=False), time.time()),
        )
        self.db.commit()

    def close(self) -> None:
        self.db.close()
