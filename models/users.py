"""Users as the management commands find them: by id or by email, whatever way they sign in."""

from __future__ import annotations

from db.pool import Database
from models.records import User

SELECT_USER_BY_ID = "SELECT id, username, role FROM users WHERE id = %s"

# Google keeps an address per account; two accounts (or a password account) may still carry the same one.
SELECT_USERS_BY_EMAIL = "SELECT id, username, role FROM users WHERE lower(email) = lower(%s) ORDER BY id"

SET_ROLE_BY_ID = "UPDATE users SET role = %s WHERE id = %s"


async def user_by_id(db: Database, user_id: int) -> User | None:
    """The user with this id, if any."""
    row = await db.fetch_one(SELECT_USER_BY_ID, (user_id,))
    return User(row[0], row[1], row[2]) if row else None


async def users_by_email(db: Database, email: str) -> list[User]:
    """Every user whose email is this one (compared without regard to case), oldest first."""
    return [User(row[0], row[1], row[2]) for row in await db.fetch_all(SELECT_USERS_BY_EMAIL, (email,))]


async def set_user_role(db: Database, user_id: int, role: str) -> None:
    """Give the user with this id a role."""
    await db.execute(SET_ROLE_BY_ID, (role, user_id))
