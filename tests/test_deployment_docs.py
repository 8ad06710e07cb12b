"""docs/operations.md's systemd unit and nginx example: what they must say, and checked by the real tools where here."""

from __future__ import annotations

import configparser
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.common import PROJECT_DIR

OPERATIONS = PROJECT_DIR / "docs" / "operations.md"


def artefact(language: str) -> str:
    """The one block of `language` in the "Deployment artefacts" section."""
    section = OPERATIONS.read_text().split("\n## Deployment artefacts\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(rf"^```{language}\n(.*?)^```$", section, re.S | re.M)
    return str(block)


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(artefact("ini"))
    return parser


def test_the_unit_runs_gunicorn_as_configured_and_stops_within_its_grace():
    service = unit()["Service"]
    assert service["ExecStart"].endswith("gunicorn web:create_app -c gunicorn.conf.py")
    assert service["User"] not in {"root", "0"} and service["EnvironmentFile"]
    assert "HUP" in service["ExecReload"]
    graceful = runpy.run_path(str(PROJECT_DIR / "gunicorn.conf.py"))["graceful_timeout"]
    assert int(service["TimeoutStopSec"]) > graceful, "systemd must not kill what gunicorn is still finishing"
    assert service["Environment"] == f"CHATTERD_VAR_DIR=/var/lib/{service['StateDirectory']}"


def test_systemd_accepts_the_unit(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    text = artefact("ini").replace("/srv/chatterd/.venv/bin/gunicorn", str(Path(sys.prefix) / "bin" / "gunicorn"))
    path = tmp_path / "chatterd.service"
    path.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False)  # noqa: S607
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_proxy_passes_the_client_address_chatterd_trusts():
    text = artefact("nginx")
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in text
    assert "TRUSTED_PROXIES=1" in OPERATIONS.read_text()
    assert re.search(r"location = /metrics \{[^}]*deny all;", text), "metrics stay off the public internet"


def test_nginx_accepts_the_example(tmp_path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not nginx:
        pytest.skip("nginx is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=chat.example.com",  # noqa: S607
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, check=True,
    )  # fmt: skip
    site = (
        artefact("nginx")
        .replace("/etc/letsencrypt/live/chat.example.com/fullchain.pem", str(cert))
        .replace("/etc/letsencrypt/live/chat.example.com/privkey.pem", str(key))
    )
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {tmp_path};\n{site}\n}}\n"
    )
    result = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
