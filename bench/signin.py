"""CPU per Google sign-in, without HTTP: `python -m bench.signin [--calls N] [--concurrency C]`.

The app's sign-in call (`google_signin.signin.with_id_token`: the ID token checked, the statement, the JWT minted)
run N times, C at a time, in this process against a Postgres of the bench's own (with pg_stat_statements, as
`make bench` runs it). It prints the CPU this process and Postgres used per sign-in: figures that move far less with
the machine's load than requests per second do.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path

from aiohttp import web

from bench.servers import FakeGoogleServer, Postgres
from google_signin import signin
from settings import Settings
from web import create_app

ACCOUNTS = 200


async def measure(calls: int, concurrency: int) -> tuple[float, float]:
    """Worker and Postgres CPU seconds per sign-in, after a warm-up that creates the accounts."""
    with tempfile.TemporaryDirectory(prefix="chatterd-signin-") as tmp:
        postgres = Postgres(Path(tmp))
        url = await asyncio.to_thread(postgres.start)
        google = FakeGoogleServer()
        await google.start()
        env = {
            "DATABASE_URL": url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "GOOGLE_CLIENT_IDS": google.CLIENT_ID,
            "GOOGLE_CERTS_URL": google.certs_url,
            "CHATTERD_VAR_DIR": str(Path(tmp) / "var"),
            "ADDUSER_MAX_PER_ADDRESS": "0",
        }
        app = await create_app(Settings.from_env({**os.environ, **env}))
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            tokens = [google.id_token(f"bench-signin-{i}", f"Bench {i}") for i in range(ACCOUNTS)]

            async def sign_ins(first: int, count: int) -> None:
                for i in range(first, first + count):
                    await signin.with_id_token(
                        app,
                        client_id=google.CLIENT_ID,
                        id_token=tokens[i % ACCOUNTS],
                        address="127.0.0.1",
                        user_agent="bench",
                    )

            await sign_ins(0, ACCOUNTS)
            each = calls // concurrency
            cpu, postgres_cpu = time.process_time(), postgres.cpu_seconds()
            await asyncio.gather(*(sign_ins(n * 31, each) for n in range(concurrency)))
            done = each * concurrency
            return (time.process_time() - cpu) / done, (postgres.cpu_seconds() - postgres_cpu) / done
        finally:
            await runner.cleanup()
            await google.stop()
            await asyncio.to_thread(postgres.stop)


def main(argv: list[str] | None = None) -> None:
    """Print µs of CPU per sign-in, here and in Postgres."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=4000, help="sign-ins measured (4000)")
    parser.add_argument("--concurrency", type=int, default=8, help="sign-ins at a time (8)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    worker, postgres = asyncio.run(measure(args.calls, args.concurrency))
    print(f"per sign-in: {1e6 * worker:.0f} µs of CPU in the app, {1e6 * postgres:.0f} µs in Postgres")


if __name__ == "__main__":
    main()
