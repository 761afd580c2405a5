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
from typing import Any, Iterable, Iterator

from distill.errors import BadInput


def default_cache_path() -> Path:
    env = os.environ.get("DISTILL_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "distill" / "teacher.sqlite"


def request_key(teacher_id: str, request: dict[str, Any]) -> str:
    blob = json.dumps({"teacher": teacher_id, "request": request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# A teacher that answers junk is asked again on later runs, but not forever: after this many invalid answers
# to one request, the last one is final (the row stays invalid, label null, raw kept).
INVALID_ATTEMPTS_CAP = 3


def damaged(path: Path, e: BaseException) -> BadInput:
    return BadInput(
        f"{path}: the answer cache is damaged ({e}); move it aside or delete it (its answers are then asked "
        "again), or pass --cache NEW_PATH"
    )


class AnswerCache:
    """Good answers in `answers`; invalid ones (kept for inspection, asked again) in `invalid`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # A damaged page is found now, before anything is asked or written, not halfway through a run.
            check = db.execute("PRAGMA quick_check").fetchone()
            if check and check[0] != "ok":
                raise sqlite3.DatabaseError(str(check[0])[:200])
            db.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL, created REAL NOT NULL)"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS invalid (key TEXT PRIMARY KEY, answer TEXT NOT NULL, attempts INTEGER NOT NULL,"
                " created REAL NOT NULL)"
            )
            db.commit()
        except sqlite3.DatabaseError as e:
            if db is not None:
                db.close()
            if "not a database" in str(e) or "encrypted" in str(e):
                raise BadInput(
                    f"cannot use the answer cache at {self.path} ({e}); is it a distill cache? Pass --cache PATH"
                ) from None
            raise damaged(self.path, e) from None
        except (OSError, sqlite3.Error) as e:
            if db is not None:
                db.close()
            raise BadInput(
                f"cannot use the answer cache at {self.path} ({e}); is it a distill cache? Pass --cache PATH"
            ) from None
        self.db = db

    def _rows(self, table: str, keys: Iterable[str], cols: str) -> Iterator[tuple]:
        keys = list(dict.fromkeys(keys))
        try:
            for i in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                yield from self.db.execute(f"SELECT {cols} FROM {table} WHERE key IN ({marks})", chunk)
        except sqlite3.DatabaseError as e:
            raise damaged(self.path, e) from None

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Good answers only: an invalid one is never served as if it were final."""
        return {key: json.loads(answer) for key, answer in self._rows("answers", keys, "key, answer")}

    def invalid_attempts(self, keys: Iterable[str]) -> dict[str, tuple[int, dict[str, Any]]]:
        """key -> (invalid answers so far, the last one), for requests that never got a good answer."""
        return {key: (n, json.loads(a)) for key, a, n in self._rows("invalid", keys, "key, answer, attempts")}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.get_many([key]).get(key)

    def _write(self, sql: str, args: tuple) -> None:
        try:
            self.db.execute(sql, args)
            self.db.commit()
        except sqlite3.DatabaseError as e:
            raise damaged(self.path, e) from None

    def put(self, key: str, answer: dict[str, Any]) -> None:
        # Committed per answer on purpose: a crash loses at most the requests still in flight.
        self._write(
            "INSERT OR REPLACE INTO answers (key, answer, created) VALUES (?, ?, ?)",
            (key, json.dumps(answer, ensure_ascii=False), time.time()),
        )

    def put_invalid(self, key: str, answer: dict[str, Any]) -> int:
        """Keep an invalid answer for inspection and count it; returns the attempts so far."""
        self._write(
            "INSERT INTO invalid (key, answer, attempts, created) VALUES (?, ?, 1, ?) ON CONFLICT(key) DO UPDATE "
            "SET answer = excluded.answer, attempts = attempts + 1, created = excluded.created",
            (key, json.dumps(answer, ensure_ascii=False), time.time()),
        )
        return self.invalid_attempts([key]).get(key, (1, answer))[0]

    def demote(self, key: str) -> None:
        """An answer stored as good by an older version that this one finds invalid: ask it again."""
        answer = self.get(key)
        self._write("DELETE FROM answers WHERE key = ?", (key,))
        if answer is not None:
            self.put_invalid(key, answer)

    def close(self) -> None:
        self.db.close()
