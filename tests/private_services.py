"""A Kafka broker and a MariaDB of a test's own, which it may stop and start at will.

The shared services (`ops/services.sh`) must stay up for every other test, so fault
tests and the outage benchmark use these: the same Kafka jars and the same `mariadbd`, with
their own ports and data directories.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kafka_libs() -> Path:
    script = (ROOT / "ops" / "services.sh").read_text()
    version = re.search(r'^KAFKA_VERSION="?([^"\s]+)', script, re.M)
    cache = Path(os.environ.get("D1CDC_CACHE_DIR", Path.home() / ".cache" / "d1cdc"))
    return cache / f"kafka-{version.group(1) if version else '4.1.1'}" / "libs"


class Broker:
    """A single-node KRaft Kafka on free ports; `stop` kills it (an outage), `start`
    brings it back on the same data."""

    def __init__(self, root: Path) -> None:
        libs = kafka_libs()
        if not (libs / ".complete").is_file():
            raise RuntimeError(f"no Kafka jars in {libs}: run `bash ops/services.sh up` first")
        self.classpath = f"{libs}/*"
        self.port, controller = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.dir = root / "kafka"
        (self.dir / "data").mkdir(parents=True)
        template = (ROOT / "ops" / "kafka" / "server.properties.in").read_text()
        self.config = self.dir / "server.properties"
        self.config.write_text(
            template.replace("@KAFKA_PORT@", str(self.port))
            .replace("@CONTROLLER_PORT@", str(controller))
            .replace("@LOG_DIRS@", str(self.dir / "data"))
        )
        cid = self._java("kafka.tools.StorageTool", "random-uuid").strip()
        self._java("kafka.tools.StorageTool", "format", "-t", cid, "-c", str(self.config),
                   "--standalone")  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def _java(self, *args: str) -> str:
        return subprocess.run(
            ["java", "-cp", self.classpath, *args], capture_output=True, text=True, check=True
        ).stdout

    def start(self) -> float:
        """Start; return the moment it answers metadata requests."""
        self.proc = subprocess.Popen(
            ["java", "-Xmx384m", "-Xms128m", f"-Dkafka.logs.dir={self.dir}",
             f"-Dlog4j2.configurationFile={ROOT / 'ops' / 'kafka' / 'log4j2.properties'}",
             "-cp", self.classpath, "kafka.Kafka", str(self.config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                admin.list_topics(timeout=2)
                return time.time()
            except Exception:
                time.sleep(0.2)
        raise RuntimeError("private broker did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # gone at once, like a crashed or partitioned broker
            self.proc.wait()
            self.proc = None


class MariaDB:
    """A plain mariadbd on a free port with its own data dir; `restart` stops it
    (cleanly, like a service restart) and starts it again on the same data."""

    USER, PASSWORD = "fault", "fault-pass"

    def __init__(self, root: Path, binary: str) -> None:
        self.binary, self.root, self.port = binary, root, free_port()
        user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True)
        self.os_user = user.stdout.strip()
        self.cnf = root / "my.cnf"
        root.mkdir(parents=True, exist_ok=True)
        self.cnf.write_text(
            f"""[mysqld]
user={self.os_user}
datadir={root}/data
socket={root}/mariadb.sock
pid-file={root}/mariadb.pid
log-error={root}/mariadb.err
bind-address=127.0.0.1
port={self.port}
skip-name-resolve
character-set-server=utf8mb4
innodb_buffer_pool_size=64M
innodb_flush_log_at_trx_commit=2
[client]
socket={root}/mariadb.sock
"""
        )
        subprocess.run(
            ["mariadb-install-db", f"--defaults-file={self.cnf}", f"--user={self.os_user}",
             "--skip-test-db", "--auth-root-authentication-method=socket"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"mysql+pymysql://{self.USER}:{self.PASSWORD}@127.0.0.1:{self.port}/{database}"

    def _client(self, sql: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["mariadb", f"--defaults-file={self.cnf}", "-u", self.os_user, "-e", sql],
            capture_output=True,
        )

    def start(self, database: str | None = None) -> None:
        self.proc = subprocess.Popen(
            [self.binary, f"--defaults-file={self.cnf}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while self._client("SELECT 1").returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.root / "mariadb.err").read_text()[-2000:])
            time.sleep(0.3)
        if database is not None:
            self._client(
                f"CREATE DATABASE IF NOT EXISTS {database} CHARACTER SET utf8mb4; "
                f"CREATE USER IF NOT EXISTS '{self.USER}'@'%' IDENTIFIED BY '{self.PASSWORD}'; "
                f"GRANT ALL PRIVILEGES ON *.* TO '{self.USER}'@'%';"
            )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(60)
            self.proc = None
