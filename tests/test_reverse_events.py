"""producers.reverse_events: MySQL rows become source-representation v1 reverse events."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from producers.reverse_events import reverse_delete, reverse_upsert
from tests.edge_mapping import EDGE_DICT
from worker.envelope import decode_event, encode_event
from worker.errors import ConversionError
from worker.schema.convert import convert_row
from worker.schema.mapping import mapping_from_dict
from worker.topics import reverse_topic_for, topic_for

ORDER = mapping_from_dict(EDGE_DICT).table("order")
MYSQL_ROW = {
    "key": "K1",
    "select": 2**62 + 1,
    "we`ird col": "x",
    "index": 7,
    "isActive": 1,
    "doc": '{"b": 1, "a": [1, 2]}',
    "price": Decimal("12.500000"),
    "ratio": 0.25,
    "avatar": b"\x00\xff",
    "bornAt": datetime(2001, 2, 3, 4, 5, 6, 789000),
    "seenAtMs": datetime(2024, 5, 6, 7, 8, 9, 123000),
    "updatedAt": datetime(2024, 5, 6, 7, 8, 9),
    "updateCounter": 3,
}


def test_reverse_topic_is_apart_from_the_forward_topic() -> None:
    assert reverse_topic_for("d1cdc", "order") == "d1cdc.reverse.order"
    assert reverse_topic_for("d1cdc", "order") != topic_for("d1cdc", "order")


def test_reverse_upsert_carries_source_representation_and_origin() -> None:
    event = reverse_upsert(ORDER, MYSQL_ROW)
    assert event.origin == "reverse" and event.op == "upsert"
    assert event.key == {"key": "K1", "select": 2**62 + 1}
    assert event.row is not None
    assert event.row["isActive"] == 1
    assert event.row["doc"] == '{"b":1,"a":[1,2]}'
    assert event.row["seenAtMs"] == 1714979289123
    assert event.row["updatedAt"] == 1714979289
    assert event.row["bornAt"] == "2001-02-03 04:05:06.789"


def test_reverse_upsert_survives_the_wire_and_converts_back_to_the_mysql_row() -> None:
    """The forward conversion of the decoded reverse row is the MySQL row (JSON re-spaced)."""
    _, value = encode_event(reverse_upsert(ORDER, MYSQL_ROW))
    decoded = decode_event(value)
    assert decoded.origin == "reverse"
    assert decoded.row is not None
    back = convert_row(ORDER, decoded.row, decoded.key)
    expected = dict(MYSQL_ROW, isActive=True, doc='{"b":1,"a":[1,2]}')
    assert back == expected


def test_reverse_delete_has_key_only() -> None:
    event = reverse_delete(ORDER, {"key": "K1", "select": 5})
    assert (event.op, event.row, event.key) == ("delete", None, {"key": "K1", "select": 5})


def test_unfit_mysql_value_is_a_conversion_error() -> None:
    with pytest.raises(ConversionError, match=r"order\.isActive"):
        reverse_upsert(ORDER, dict(MYSQL_ROW, isActive=5))
