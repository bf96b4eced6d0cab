"""Realistic source values, stored the way Drizzle-on-D1 stores them.

Every generator takes a seeded `random.Random` and the row's index, so a demo database
is a pure function of its seed. Names carry accents and emoji (4-byte characters), JSON
is `JSON.stringify` output (compact, nested), timestamps are Unix seconds unless the
column is a `timestamp_ms` one.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

Generator = Callable[[random.Random, int], Any]

FIRST_NAMES = (
    "Zoë", "José", "Siobhán", "Łukasz", "Ana 💪", "李雷", "Åsa", "Chloé", "Mateus", "Olúwadé",
    "Noah", "Emma", "Liam", "Søren", "Renée", "Dmitrij", "Ayşe", "Nguyễn", "Kai 🏋️", "Maria",
)  # fmt: skip
LAST_NAMES = (
    "Müller", "García", "O'Brien", "Nowak", "Silva", "Kowalczyk", "Smith", "Jørgensen",
    "Dubois", "Rossi", "Yilmaz", "Tanaka", "Andersson", "Fernández", "Ngata", "Lee",
)  # fmt: skip
WORDS = (
    "strength", "burpee", "rowing", "snatch", "clean", "jerk", "thruster", "wall-ball",
    "murph", "fran", "grace", "helen", "karen", "diane", "amrap", "emom", "tabata", "chipper",
)  # fmt: skip
_ID_ALPHABET = string.ascii_lowercase + string.digits

# Plausible app-era window for createdAt: 2021-01-01 .. 2025-06-01 (Unix seconds).
EPOCH_START = 1_609_459_200
EPOCH_END = 1_748_736_000


def cuid_like(prefix: str, rng: random.Random) -> str:
    """A prefixed CUID2-looking id, e.g. `usr_k3j9x…` (24 lowercase base-36 characters)."""
    return f"{prefix}_" + "".join(rng.choices(_ID_ALPHABET, k=24))


def first_name(rng: random.Random, _i: int) -> str:
    return rng.choice(FIRST_NAMES)


def last_name(rng: random.Random, _i: int) -> str:
    return rng.choice(LAST_NAMES)


def email(rng: random.Random, i: int) -> str:
    # Unique by the row index; the local part keeps the accents the app really sees.
    return f"{rng.choice(FIRST_NAMES).split()[0].lower()}.{i}@example.com"


def title(rng: random.Random, _i: int) -> str:
    words = rng.sample(WORDS, 2)
    suffix = rng.choice(("", "", " 🔥", " 2025", " — Élite"))
    return f"{words[0].title()} {words[1]}{suffix}"


def slug(rng: random.Random, i: int) -> str:
    return f"{rng.choice(WORDS)}-{i}"


def paragraph(rng: random.Random, _i: int) -> str:
    sentence = " ".join(rng.choices(WORDS, k=rng.randint(4, 30)))
    return sentence.capitalize() + rng.choice((".", "!", " 🙂", "…"))


def choice_of(*options: str) -> Generator:
    return lambda rng, _i: rng.choice(options)


def flag(rng: random.Random, _i: int) -> int:
    return rng.randint(0, 1)


def counter(low: int, high: int) -> Generator:
    return lambda rng, _i: rng.randint(low, high)


def huge_integer(rng: random.Random, _i: int) -> int:
    """64-bit values above 2^53: JavaScript cannot hold them as numbers."""
    return rng.randint(2**53 + 1, 2**63 - 1)


def real_between(low: float, high: float) -> Generator:
    return lambda rng, _i: round(rng.uniform(low, high), 6)


def seconds(rng: random.Random, _i: int) -> int:
    return rng.randint(EPOCH_START, EPOCH_END)


def milliseconds(rng: random.Random, _i: int) -> int:
    return rng.randint(EPOCH_START * 1000, EPOCH_END * 1000)


def birth_seconds(rng: random.Random, _i: int) -> int:
    """Dates of birth 1950..2008: many are before 1970, i.e. negative Unix seconds."""
    return rng.randint(-631_152_000, 1_199_145_600)


def iso_date(rng: random.Random, _i: int) -> str:
    day = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 700))
    return day.strftime("%Y-%m-%d")


def sqlite_now_text(rng: random.Random, _i: int) -> str:
    """What SQLite's DEFAULT CURRENT_TIMESTAMP writes: 'YYYY-MM-DD HH:MM:SS', UTC."""
    moment = datetime.fromtimestamp(rng.randint(EPOCH_START, EPOCH_END), UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def blob(rng: random.Random, _i: int) -> bytes:
    return rng.randbytes(rng.randint(32, 96))


def _js(value: Any) -> str:
    """JSON.stringify output: compact separators, non-ASCII kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_settings(rng: random.Random, _i: int) -> str:
    return _js(
        {
            "theme": rng.choice(("light", "dark", "system")),
            "notifications": {"email": rng.random() < 0.5, "push": rng.random() < 0.5},
            "locale": rng.choice(("en-US", "de-DE", "pt-BR", "ja-JP")),
            "tags": rng.sample(WORDS, rng.randint(0, 3)),
        }
    )


def json_permissions(rng: random.Random, _i: int) -> str:
    actions = ("read", "write", "invite", "billing", "admin", "judge", "score:edit")
    return _js(rng.sample(actions, rng.randint(1, 4)))


def json_metadata(rng: random.Random, _i: int) -> str:
    return _js(
        {
            "source": rng.choice(("web", "ios", "android", "import")),
            "version": rng.randint(1, 9),
            "note": rng.choice((None, "café ☕", "from Zoë 😀")),
            "history": [{"at": seconds(rng, 0), "by": cuid_like("usr", rng)}],
        }
    )


def json_answers(rng: random.Random, _i: int) -> str:
    return _js({"shirtSize": rng.choice(("S", "M", "L")), "agreed": True, "notes": []})


def mixed_sent_at(rng: random.Random, i: int) -> int | str:
    """An integer timestamp column with DEFAULT CURRENT_TIMESTAMP: rows the app wrote hold
    Unix seconds, rows that took the default hold SQLite's 'YYYY-MM-DD HH:MM:SS' text."""
    return sqlite_now_text(rng, i) if rng.random() < 0.3 else seconds(rng, i)
