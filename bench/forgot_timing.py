"""Does POST /password/forgot take longer for an account that exists? Known and unknown accounts, interleaved.

    python -m bench.forgot_timing               # 5 runs of 400 pairs (about a minute)
    python -m bench.forgot_timing --runs 3 --pairs 100

Starts its own Postgres and chatterd (gunicorn, 2 workers, as in production; mail goes to the log), makes accounts
with verified addresses, then sends forgot requests one at a time on one connection, a known and an unknown account
in random order in each pair, by email and by username alike. It reports, per run, the median time of each kind, and
compares the difference between the kinds with the run-to-run noise: the spread of one kind's medians across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.servers import Gunicorn, Postgres, execute

ACCOUNTS = 50
PASSWORD = "correct horse battery staple"


async def make_accounts(url: str, db_url: str) -> list[dict[str, str]]:
    """Password accounts with verified addresses (verified in SQL: the bench reads no mail)."""
    async with aiohttp.ClientSession() as session:
        for n in range(ACCOUNTS):
            body = {"username": f"known{n}", "password": PASSWORD, "email": f"known{n}@bench.test"}
            async with session.post(url + "/register", json=body) as resp:
                assert resp.status == 201, await resp.text()
    execute(db_url, "UPDATE users SET email_verified_at = now()")
    known = [{"email": f"known{n}@bench.test"} for n in range(ACCOUNTS)]
    known += [{"username": f"known{n}"} for n in range(ACCOUNTS)]
    return known


async def run_once(
    session: aiohttp.ClientSession, url: str, known: list[dict[str, str]], pairs: int
) -> dict[str, list[float]]:
    """`pairs` known and `pairs` unknown requests, interleaved in random order; their times in milliseconds."""
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for n in range(pairs):
        account = known[n % len(known)]
        stranger = {key: f"nobody{secrets.token_hex(4)}" + ("@bench.test" if key == "email" else "") for key in account}
        order = [("known", account), ("unknown", stranger)]
        random.shuffle(order)
        for kind, body in order:
            started = time.perf_counter()
            async with session.post(url + "/password/forgot", json=body) as resp:
                await resp.read()
                assert resp.status == 202, resp.status
            times[kind].append((time.perf_counter() - started) * 1000)
    return times


async def main(runs: int, pairs: int) -> int:
    root = Path(tempfile.mkdtemp(prefix="chatterd-forgot-"))
    postgres = Postgres(root / "pg")
    db_url = await asyncio.get_running_loop().run_in_executor(None, postgres.start)
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": db_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "CHATTERD_VAR_DIR": str(root / "var"),
        "ACCESS_LOG": "",
        "LOG_LEVEL": "info",  # the workers say when they are ready; mail (to the log) is written after each answer
        "RECOVERY_MAX_PER_ACCOUNT": "1000000",
        "RECOVERY_MAX_PER_ADDRESS": "1000000",
        "SIGNUP_MAX_PER_ADDRESS": "1000000",
    }
    server = Gunicorn(
        "web:create_app",
        env=env,
        log_path=root / "chatterd.log",
        control_socket=root / "gunicorn.ctl",
        ready_marker="chatterd worker",
        probe="/healthz",
    )
    try:
        await server.start()
        known = await make_accounts(server.url, db_url)
        medians: dict[str, list[float]] = {"known": [], "unknown": []}
        everything: dict[str, list[float]] = {"known": [], "unknown": []}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            await run_once(session, server.url, known, 50)  # warm-up, not counted
            for run in range(1, runs + 1):
                times = await run_once(session, server.url, known, pairs)
                for kind in medians:
                    medians[kind].append(statistics.median(times[kind]))
                    everything[kind] += times[kind]
                print(f"run {run}: median known {medians['known'][-1]:.3f} ms, unknown {medians['unknown'][-1]:.3f} ms")
        report(medians, everything)
    finally:
        await server.stop()
        postgres.stop()
    return 0


def report(medians: dict[str, list[float]], everything: dict[str, list[float]]) -> None:
    """The table: each kind's median and p90 over all runs, the difference, and the run-to-run noise."""
    print()
    print("| kind | median | p90 | run medians (min..max) |")
    print("| --- | --- | --- | --- |")
    for kind in ("known", "unknown"):
        values = sorted(everything[kind])
        p90 = values[int(len(values) * 0.9)]
        print(
            f"| {kind} | {statistics.median(values):.3f} ms | {p90:.3f} ms | "
            f"{min(medians[kind]):.3f}..{max(medians[kind]):.3f} ms |"
        )
    difference = statistics.median(everything["known"]) - statistics.median(everything["unknown"])
    noise = max(max(medians[kind]) - min(medians[kind]) for kind in medians)
    paired = statistics.median(k - u for k, u in zip(medians["known"], medians["unknown"], strict=True))
    print()
    print(f"known - unknown: {difference:+.3f} ms overall, {paired:+.3f} ms (median of the runs' differences)")
    print(f"run-to-run noise (widest spread of one kind's run medians): {noise:.3f} ms")
    print("difference below the noise" if abs(difference) < noise else "difference ABOVE the noise")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=400)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.runs, args.pairs)))
