"""A throwaway MariaDB that only speaks TLS, for the target-TLS tests.

It gets its own data dir, socket and port, `require_secure_transport=ON`, and a server
certificate issued by a throwaway CA for the IP address 127.0.0.2 only. It listens on
127.0.0.2 and 127.0.0.3, two addresses the code treats as remote (only 127.0.0.1,
localhost and ::1 are loopback to it), so one server can show both a matching and a
mismatching hostname. A second, unrelated CA lets a test name the wrong CA.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVER_IP = "127.0.0.2"  # the certificate's only subjectAltName
OTHER_IP = "127.0.0.3"  # the same server, under a name the certificate does not carry
USER, PASSWORD, DATABASE = "tls_user", "tls-pass", "tls_db"


@dataclass(frozen=True)
class TlsServer:
    port: int
    ca: Path  # the CA that issued the server certificate
    other_ca: Path  # a CA that did not

    def url(self, host: str = SERVER_IP, query: str = "") -> str:
        base = f"mysql+pymysql://{USER}:{PASSWORD}@{host}:{self.port}/{DATABASE}"
        return f"{base}?{query}" if query else base


def mariadbd() -> str | None:
    return shutil.which("mariadbd") or (
        "/usr/sbin/mariadbd" if os.access("/usr/sbin/mariadbd", os.X_OK) else None
    )


def make_certificates(root: Path) -> tuple[Path, Path, Path, Path]:
    """(ca.pem, other-ca.pem, server.pem, server.key), EC P-256, valid two days."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True)

    for name in ("ca", "other-ca"):
        run(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
            "-subj", f"/CN=d1cdc throwaway {name}",
        )  # fmt: skip
    run(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={SERVER_IP}",
    )  # fmt: skip
    (root / "san.ext").write_text(f"subjectAltName=IP:{SERVER_IP}\n")
    run(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext",
    )  # fmt: skip
    return root / "ca.pem", root / "other-ca.pem", root / "server.pem", root / "server.key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(root: Path, binary: str) -> tuple[TlsServer, subprocess.Popen[bytes]]:
    ca, other_ca, cert, key = make_certificates(root)
    port, data, sock = _free_port(), root / "data", root / "mariadb.sock"
    cnf = root / "my.cnf"
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout
    cnf.write_text(
        f"""[mysqld]
user={user.strip()}
datadir={data}
socket={sock}
pid-file={root}/mariadb.pid
log-error={root}/mariadb.err
bind-address={SERVER_IP},{OTHER_IP}
port={port}
skip-name-resolve
character-set-server=utf8mb4
innodb_buffer_pool_size=32M
innodb_log_file_size=16M
ssl-ca={ca}
ssl-cert={cert}
ssl-key={key}
require_secure_transport=ON
[client]
socket={sock}
"""
    )
    subprocess.run(
        [
            "mariadb-install-db", f"--defaults-file={cnf}", f"--user={user.strip()}",
            "--skip-test-db", "--auth-root-authentication-method=socket",
        ],
        check=True, capture_output=True,
    )  # fmt: skip
    proc = subprocess.Popen(
        [binary, f"--defaults-file={cnf}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    client = ["mariadb", f"--defaults-file={cnf}", "-u", user.strip()]
    while subprocess.run([*client, "-e", "SELECT 1"], capture_output=True).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log = (root / "mariadb.err").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"TLS mariadbd did not start:\n{log}")
        time.sleep(0.3)
    grant = (
        f"CREATE DATABASE {DATABASE}; CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';"
        f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%';"
    )
    subprocess.run([*client, "-e", grant], check=True, capture_output=True)
    return TlsServer(port=port, ca=ca, other_ca=other_ca), proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
