"""`python -m manage` in a subprocess, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys

from settings import Settings
from tests.support.common import PROJECT_DIR


def run_manage(
    *args: str, settings: Settings | None = None, stdin: str = "", **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run a manage.py command; with `settings`, against their database and secret, else with neither set."""
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "SECRET_KEY"}}
    env.update(extra_env)
    if settings is not None:
        env["SECRET_KEY"] = settings.secret_key
        if settings.database_url is not None:
            env["DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [sys.executable, "-m", "manage", *args],
        cwd=PROJECT_DIR,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
