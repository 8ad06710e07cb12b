"""Management commands (there is no admin page): users and roles, signing keys, and the local servers.

python -m manage create-user NAME [--role admin] [--password-stdin]
python -m manage set-role NAME ROLE                  (a password account by its username)
python -m manage set-role --id 42 ROLE               (any user, Google ones too, by id ...)
python -m manage set-role --email ann@example.com ROLE   (... or by email)
python -m manage logout-everywhere NAME | --id 42 | --email ann@example.com
python -m manage generate-signing-key --algorithm ES256 --out var/jwt-es256-2026-11.pem
python -m manage stop        (the servers `make run`/`make dev` started here, then the embedded Postgres)
python -m manage reset-db    (stop, then delete the embedded Postgres' data: every user and chatt)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil
from aiohttp import web

import models
from auth import signing_keys
from auth.tokens import ROLES
from auth.usernames import username_problem
from core.keys import authenticator_key, db_key, password_hasher_key
from core.startup import StartupError, wait_for_database
from db.embedded import stop_running
from db.pool import Database
from settings import Settings, var_dir_from_env
from web import create_app

logger = logging.getLogger("chatterd.manage")

# Where `make run` and `make dev` keep their gunicorn masters' pid files, under the var/ folder.
PID_DIR = "run"
STOP_WAIT = 60.0  # seconds for the servers to finish what they have (gunicorn's graceful_timeout is 30)


async def _create_user(app: web.Application, args: argparse.Namespace) -> int:
    db = app[db_key]
    if problem := username_problem(args.username):
        logger.error("%s", problem)
        return 2
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    if not 8 <= len(password) <= 256:
        logger.error("the password must be 8 to 256 characters long")
        return 2
    password_hash = await app[password_hasher_key].hash(password)
    try:
        user = await models.create_password_user(db, args.username, password_hash)
    except models.UsernameTaken:
        logger.error("the username %r is already taken", args.username)
        return 1
    if args.role != "user":
        await models.set_user_role(db, user.id, args.role)
        await models.record_event(
            db, user_id=user.id, event="role_change", address="manage", detail={"from": "user", "to": args.role}
        )
    logger.info("created user %r (id %d) with role %s", user.username, user.id, args.role)
    return 0


async def _find_user(db: Database, args: argparse.Namespace) -> models.User | None:
    """The one user the command line names, by username, id or email; None (said why) otherwise."""
    if args.id is not None:
        user = await models.user_by_id(db, args.id)
        if user is None:
            logger.error("no user has the id %d", args.id)
        return user
    if args.email is not None:
        users = await models.users_by_email(db, args.email)
        if len(users) > 1:
            ids = ", ".join(f"{u.id} ({u.username})" for u in users)
            logger.error("several users have the email %r: %s; name one with --id", args.email, ids)
            return None
        if not users:
            logger.error("no user has the email %r", args.email)
        return users[0] if users else None
    user = await models.user_by_name(db, args.username)
    if user is None:
        logger.error("no password account is called %r (Google users: use --id or --email)", args.username)
    return user


async def _with_app(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if settings.database_url:
        try:
            # It blocks (psycopg2, with pauses between tries): off the event loop.
            await asyncio.to_thread(
                wait_for_database,
                settings.database_url,
                wait=settings.db_startup_wait,
                connect_timeout=settings.db_connect_timeout,
            )
        except StartupError as exc:
            logger.error("%s", exc)
            return 1
    app = await create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup contexts: pool, migrations, revocation listener
    try:
        if args.command == "create-user":
            return await _create_user(app, args)
        db = app[db_key]
        user = await _find_user(db, args)
        if user is None:
            return 1
        if args.command == "set-role":
            await models.set_user_role(db, user.id, args.role)
            await models.record_event(
                db, user_id=user.id, event="role_change", address="manage", detail={"from": user.role, "to": args.role}
            )
        # Credentials already act with the new role (the server reads it from the users row); a role change also
        # ends the user's sessions, so nobody keeps a session begun under other rights.
        await app[authenticator_key].revoke_all(user.id, address="manage", reason=args.command)
        if args.command == "set-role":
            logger.info("set the role of %r to %s (id %d) and ended their sessions", user.username, args.role, user.id)
        else:
            logger.info("logged %r (id %d) out everywhere", user.username, user.id)
        return 0
    finally:
        await runner.cleanup()


def _generate_signing_key(algorithm: str, out: Path) -> int:
    """Write a new private key for JWT_SIGNING_KEY_FILES and say its kid; needs no database nor settings."""
    key = signing_keys.SigningKey.from_private_key(signing_keys.generate_private_key(algorithm), algorithm)
    try:
        signing_keys.write_new_key_file(out, key.private_key)
    except FileExistsError:
        logger.error("%s already exists; not overwriting it", out)
        return 1
    except OSError as exc:
        logger.error("cannot write %s: %s", out, exc.strerror or exc)
        return 1
    logger.info("wrote a new %s signing key to %s (mode 600)", algorithm, out)
    logger.info("kid %s", key.kid)
    return 0


def _stop(var_dir: Path) -> int:
    """Stop the gunicorn masters whose pid files are in var/run, then the embedded Postgres of var/."""
    masters = []
    for pid_file in sorted((var_dir / PID_DIR).glob("*.pid")):
        try:
            master = psutil.Process(int(pid_file.read_text().strip()))
            is_gunicorn = any("gunicorn" in part for part in master.cmdline())
        except (ValueError, psutil.Error):
            is_gunicorn = False
        if not is_gunicorn:  # the master is gone (killed outright) and left its file
            pid_file.unlink(missing_ok=True)
            continue
        logger.info("stopping chatterd (pid %d, %s)", master.pid, pid_file.stem)
        master.terminate()
        masters.append(master)
    _, alive = psutil.wait_procs(masters, timeout=STOP_WAIT)
    if alive:
        logger.error("still running after %g s: pids %s", STOP_WAIT, ", ".join(str(p.pid) for p in alive))
        return 1
    pid = stop_running(var_dir)
    if pid is not None:
        logger.info("stopped the embedded Postgres (pid %d) of %s", pid, var_dir / "pgdata")
    if not masters and pid is None:
        logger.info("nothing was running")
    return 0


def _reset_db(var_dir: Path) -> int:
    """Stop what runs, then delete the embedded Postgres' data; the next start makes an empty one."""
    if os.environ.get("DATABASE_URL"):
        logger.error("DATABASE_URL is set: reset-db only deletes the embedded Postgres of %s", var_dir)
        return 2
    if status := _stop(var_dir):
        return status
    pgdata = var_dir / "pgdata"
    if pgdata.exists():
        shutil.rmtree(pgdata)
        logger.info("deleted %s: every user, session and chatt; the next start makes an empty database", pgdata)
    else:
        logger.info("%s does not exist: nothing to delete", pgdata)
    return 0


def _add_user_choice(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("username", nargs="?", help="a password account's username")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--id", type=int, help="any user, by id (GET /get-user shows it)")
    which.add_argument("--email", help="any user with this email (Google users have one)")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one command."""
    # The app's own start-up lines are the server's business: here only the command's lines and real problems.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
    logger.setLevel(logging.INFO)
    logging.getLogger("settings").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m manage", description="chatterd management commands")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="create a password account")
    create.add_argument("username")
    create.add_argument("--role", choices=sorted(ROLES), default="user")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    role = commands.add_parser("set-role", help="give a user a role (user, moderator, admin)")
    _add_user_choice(role)
    role.add_argument("role", choices=sorted(ROLES))
    out = commands.add_parser("logout-everywhere", help="end every session of a user")
    _add_user_choice(out)
    keygen = commands.add_parser("generate-signing-key", help="write a new private key for JWT_SIGNING_KEY_FILES")
    keygen.add_argument("--algorithm", choices=signing_keys.ASYMMETRIC_ALGORITHMS, required=True)
    keygen.add_argument("--out", type=Path, required=True, help="where to write the PEM file (never overwritten)")
    commands.add_parser("stop", help="stop the servers make run/dev started here, then the embedded Postgres")
    commands.add_parser("reset-db", help="stop, then delete the embedded Postgres' data")
    args = parser.parse_args(argv)
    if args.command == "generate-signing-key":
        return _generate_signing_key(args.algorithm, args.out)
    if args.command in {"stop", "reset-db"}:
        var_dir = var_dir_from_env(os.environ)
        return _stop(var_dir) if args.command == "stop" else _reset_db(var_dir)
    if args.command != "create-user" and (args.username is None) == (args.id is None and args.email is None):
        parser.error(f"{args.command}: name the user by a username, --id or --email (one of them)")
    return asyncio.run(_with_app(args))


if __name__ == "__main__":
    sys.exit(main())
