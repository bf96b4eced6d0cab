"""TLS to the target verifies, against a real MariaDB that refuses plaintext.

The server (tests/tls_mariadb.py) has `require_secure_transport=ON` and a certificate from
a throwaway CA for 127.0.0.2 only. It is reached at 127.0.0.2 and 127.0.0.3, addresses the
code treats as remote. The three outcomes that matter:
- the right CA and the certificate's own address: connects, verified;
- a different CA (or none, i.e. the system bundle): refused;
- the right CA at an address the certificate does not name: refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from tests import tls_mariadb
from tests.tls_mariadb import OTHER_IP, SERVER_IP, TlsServer
from worker.config import Settings
from worker.db import create_target_engine, ping, target_engine
from worker.errors import ConfigError, ServiceError


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    binary = tls_mariadb.mariadbd()
    if binary is None or shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("CI: mariadbd or openssl is missing (ops/services.sh installs both)")
        pytest.skip("mariadbd or openssl is not installed")
    server, proc = tls_mariadb.start(tmp_path_factory.mktemp("tls-mariadb"), binary)
    try:
        yield server
    finally:
        tls_mariadb.stop(proc)


def doctor_target(url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("D1CDC_")}
    env["D1CDC_TARGET_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "worker", "doctor", "--only", "target"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_right_ca_and_hostname_connects_and_doctor_says_verified(tls_server: TlsServer) -> None:
    result = doctor_target(tls_server.url(query=f"ssl_ca={tls_server.ca}"))
    assert result.returncode == 0, result.stdout + result.stderr
    line = result.stdout.strip()
    assert line.startswith("ok   target"), line
    assert "TLSv1.3" in line or "TLSv1.2" in line, line
    assert "certificate and hostname verified" in line, line

    # The server side agrees the session is encrypted.
    engine = create_target_engine(tls_server.url(query=f"ssl_ca={tls_server.ca}"))
    try:
        with engine.connect() as conn:
            cipher = conn.execute(sa.text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).one()[1]
    finally:
        engine.dispose()
    assert cipher, "server reports no TLS cipher on our session"


def test_sslmode_verify_identity_form_also_connects(tls_server: TlsServer) -> None:
    url = tls_server.url(query=f"sslrootcert={tls_server.ca}&sslmode=verify-full")
    ping(create_target_engine(url))


@pytest.mark.parametrize("which", ["other CA", "system CA bundle"])
def test_certificate_from_another_ca_is_refused(tls_server: TlsServer, which: str) -> None:
    query = f"ssl_ca={tls_server.other_ca}" if which == "other CA" else ""
    result = doctor_target(tls_server.url(query=query))
    assert result.returncode == 1, result.stdout
    assert "FAIL target" in result.stdout
    assert "CERTIFICATE_VERIFY_FAILED" in result.stdout, result.stdout
    assert tls_mariadb.PASSWORD not in result.stdout + result.stderr


def test_certificate_for_another_hostname_is_refused(tls_server: TlsServer) -> None:
    url = tls_server.url(host=OTHER_IP, query=f"ssl_ca={tls_server.ca}")
    with pytest.raises(ServiceError, match=r"IP address mismatch|doesn't match|hostname"):
        ping(create_target_engine(url))
    # verify_ca checks the chain but, as MySQL's mode of that name, not the name.
    verify_ca = tls_server.url(OTHER_IP, f"ssl_ca={tls_server.ca}&ssl_mode=VERIFY_CA")
    ping(create_target_engine(verify_ca))


def test_plaintext_to_a_remote_host_is_refused_and_names_the_setting(
    tls_server: TlsServer,
) -> None:
    url = tls_server.url(query="ssl_mode=disabled")
    with pytest.raises(ConfigError, match="D1CDC_TARGET_ALLOW_PLAINTEXT"):
        create_target_engine(url, allow_plaintext=False)
    # Allowed explicitly, it really goes out in plaintext (PyMySQL would otherwise slip in
    # unverified TLS), and this server refuses it: MariaDB answers 1045 where MySQL 8 says
    # 3159. The same credentials connect over TLS in the tests above.
    with pytest.raises(ServiceError, match=r"\(1045|\(3159"):
        ping(create_target_engine(url, allow_plaintext=True))


def test_ssl_mode_required_is_refused_as_unauthenticated() -> None:
    with pytest.raises(ConfigError, match="verify_identity"):
        create_target_engine(f"mysql+pymysql://u:p@{SERVER_IP}:1/db?ssl_mode=REQUIRED")


def test_allow_plaintext_setting_reaches_every_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The setting, not only the environment variable of the same name, is honoured."""
    monkeypatch.delenv("D1CDC_TARGET_ALLOW_PLAINTEXT", raising=False)
    url = SecretStr(f"mysql+pymysql://u:p@{SERVER_IP}:1/db?ssl_mode=disabled")
    with pytest.raises(ConfigError, match="D1CDC_TARGET_ALLOW_PLAINTEXT"):
        target_engine(Settings(target_url=url))
    target_engine(Settings(target_url=url, target_allow_plaintext=True)).dispose()
