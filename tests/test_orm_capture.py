"""SQLAlchemy capture: an SQLite-backed ORM app's committed writes become events."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from topic_reader import read_topic

from producers.emitter import ChangeEmitter
from producers.orm_capture import capture_changes
from worker.config import Settings
from worker.envelope import decode_event
from worker.kafka import admin_client
from worker.topics import ensure_topics, topic_for

pytestmark = pytest.mark.integration


class Base(DeclarativeBase):
    pass


class Member(Base):
    """The test app's model; attribute names differ from column names on purpose."""

    __tablename__ = "member"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    display_name: Mapped[str] = mapped_column("name", sa.String(50))
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column("updatedAt")


@pytest.fixture
def app(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> tuple[sessionmaker[Session], ChangeEmitter, Settings]:
    settings = make_settings()
    ensure_topics(admin_client(settings.kafka_bootstrap), settings.topic_prefix, ["member"], 1, 1)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.sqlite'}")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine)
    emitter = ChangeEmitter.from_settings(settings)
    capture_changes(sessions, emitter)
    return sessions, emitter, settings


def _events(settings: Settings) -> list[dict[str, object] | None]:
    topic = topic_for(settings.topic_prefix, "member")
    return [
        None if v is None else json.loads(v) for _, v in read_topic(settings.kafka_bootstrap, topic)
    ]


def test_committed_insert_update_delete_become_events_in_order(
    app: tuple[sessionmaker[Session], ChangeEmitter, Settings],
) -> None:
    """Insert, update, delete in three commits → upsert, upsert, delete, tombstone, keyed by
    the generated id, with column (not attribute) names and SQLite-stored values."""
    sessions, emitter, settings = app
    with sessions() as session:
        member = Member(display_name="Ann", updated_at=datetime(2024, 5, 1, 12, 0, 0))
        session.add(member)
        session.commit()
        member.display_name = "Ann B."
        member.active = False
        session.commit()
        session.delete(member)
        session.commit()
    emitter.flush()
    events = _events(settings)
    assert [e and e["op"] for e in events] == ["upsert", "upsert", "delete", None]
    first = decode_event(json.dumps(events[0]).encode())
    assert first.key == {"id": 1}
    assert first.row == {
        "id": 1,
        "name": "Ann",
        "active": 1,
        "updatedAt": "2024-05-01 12:00:00.000000",
    }
    assert events[1] is not None and events[1]["row"]["name"] == "Ann B."  # type: ignore[index]
    assert events[1]["row"]["active"] == 0  # type: ignore[index]


def test_rolled_back_changes_emit_nothing(
    app: tuple[sessionmaker[Session], ChangeEmitter, Settings],
) -> None:
    """A flushed-then-rolled-back write never becomes an event; the next commit still does."""
    sessions, emitter, settings = app
    with sessions() as session:
        session.add(Member(display_name="ghost", updated_at=datetime(2024, 1, 1)))
        session.flush()
        session.rollback()
        session.add(Member(display_name="real", updated_at=datetime(2024, 1, 1)))
        session.commit()
    emitter.flush()
    names = [e["row"]["name"] for e in _events(settings) if e]  # type: ignore[index]
    assert names == ["real"]
