"""Recovery after a broker outage longer than the session timeout: classic vs KIP-848.

    eval "$(bash ops/services.sh env)"   # for MariaDB and the Kafka jars
    python ops/bench/bench_broker_outage.py [--outage 60] [--protocols classic consumer]

A private single-node Kafka (the jars `ops/services.sh` fetched, its own ports and data dir)
is stopped for `--outage` seconds, which is longer than the consumer's 45 s session timeout,
and then started again on the same data. Meanwhile a producer writes 50 events/s and one
`d1cdc consume` process applies them to MariaDB. For each group protocol, in the same run:
- recovery: from the broker answering again to the first newly applied row;
- every produced event applied at the end (nothing lost);
- how long SIGTERM then takes to stop the consumer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.private_services import Broker  # noqa: E402
from tests.simple_mapping import versioned_table  # noqa: E402
from worker.db import create_database, create_target_engine  # noqa: E402
from worker.envelope import encode_event, new_event  # noqa: E402
from worker.schema.ddl import apply_mapping  # noqa: E402
from worker.schema.writer import write_mapping  # noqa: E402

MAPPING = versioned_table("item")


def applied(url: str) -> int:
    engine = create_target_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM item")).scalar() or 0)
    finally:
        engine.dispose()


def scenario(broker: Broker, protocol: str, outage_s: float, tmp: Path) -> dict[str, float]:
    prefix = f"outage{uuid.uuid4().hex[:6]}"
    server = os.environ["D1CDC_TARGET_URL"]
    create_database(server, prefix)
    url = sa.engine.make_url(server).set(database=prefix).render_as_string(hide_password=False)
    engine = create_target_engine(url)
    apply_mapping(engine, MAPPING)
    engine.dispose()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(f"{prefix}.item", 3, 1)])[f"{prefix}.item"].result(30)
    mapping_file = tmp / f"{prefix}.toml"
    write_mapping(MAPPING, mapping_file)
    env = {k: v for k, v in os.environ.items() if not k.startswith("D1CDC_")}
    env |= {
        "D1CDC_KAFKA_BOOTSTRAP": broker.bootstrap,
        "D1CDC_TARGET_URL": url,
        "D1CDC_TOPIC_PREFIX": prefix,
        "D1CDC_GROUP_ID": f"{prefix}-apply",
        "D1CDC_MAPPING_PATH": str(mapping_file),
        "D1CDC_METRICS_PORT": "0",
        "D1CDC_LOG_FORMAT": "json",
        "D1CDC_CONSUMER_GROUP_PROTOCOL": protocol,
    }
    consumer = subprocess.Popen(
        [sys.executable, "-m", "worker", "consume"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                         "message.timeout.ms": 600_000})  # fmt: skip
    produced = 0
    stop = threading.Event()

    def produce() -> None:
        nonlocal produced
        while not stop.is_set():
            row = {"id": f"i{produced}", "updatedAt": int(time.time() * 1000)}
            event = new_event("item", "upsert", {"id": row["id"]}, row)
            key, value = encode_event(event)
            producer.produce(f"{prefix}.item", key=key, value=value)
            producer.poll(0)
            produced += 1
            time.sleep(0.02)

    writer = threading.Thread(target=produce, daemon=True)
    writer.start()
    time.sleep(15)  # steady state
    broker.stop()
    time.sleep(outage_s)
    before = applied(url)
    back = broker.start()
    resumed = None
    while time.time() < back + 300:
        if applied(url) > before:
            resumed = time.time()
            break
        time.sleep(0.2)
    time.sleep(5)
    stop.set()
    writer.join()
    producer.flush(120)
    deadline = time.time() + 180
    while applied(url) < produced and time.time() < deadline:
        time.sleep(0.5)
    total = applied(url)
    sent = time.monotonic()
    consumer.send_signal(signal.SIGTERM)
    code = consumer.wait(120)
    return {
        "recovery_s": (resumed - back) if resumed else float("nan"),
        "produced": produced,
        "applied": total,
        "sigterm_s": time.monotonic() - sent,
        "exit": code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=60.0, help="Seconds the broker is down.")
    parser.add_argument("--protocols", nargs="+", default=["classic", "consumer"])
    args = parser.parse_args()
    if "D1CDC_TARGET_URL" not in os.environ:
        raise SystemExit('D1CDC_TARGET_URL is not set: eval "$(bash ops/services.sh env)"')
    tmp = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    results = {}
    try:
        for protocol in args.protocols:
            broker = Broker(tmp / protocol)
            broker.start()
            try:
                results[protocol] = scenario(broker, protocol, args.outage, tmp)
            finally:
                broker.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nBroker down {args.outage:g} s (session timeout 45 s), 50 events/s, one consumer")
    print(
        f"{'protocol':10} {'recovery s':>11} {'produced':>9} {'applied':>8} {'SIGTERM s':>10} exit"
    )
    for protocol, r in results.items():
        print(f"{protocol:10} {r['recovery_s']:11.1f} {r['produced']:9d} {r['applied']:8d} "
              f"{r['sigterm_s']:10.1f} {r['exit']}")  # fmt: skip


if __name__ == "__main__":
    main()
