"""Every SQL statement chatterd runs, as named constants beside small typed functions, one module per table group.

Callers use `models.<function>`; the records and domain errors live in `models.records`.
"""

from models.accounts import (
    account_for_login,
    create_password_user,
    disable_totp,
    enable_totp,
    replace_recovery_codes,
    set_role,
    set_totp_secret,
    sign_in_google_user,
    totp_state,
    upsert_google_user,
    use_recovery_code,
    use_totp_step,
    user_by_name,
)
from models.audit import list_events, record_event
from models.chatts import (
    add_chatts,
    add_chatts_for_chatter_ids,
    chatts_version,
    delete_chatt,
    list_chatts,
    list_newest_versioned,
)
from models.email import register_with_email, set_email, verify_email
from models.mail import claim_due_message, purge_done_messages, seconds_to_next_due
from models.passwords import change_password, password_hash_of, request_password_reset, reset_password
from models.records import (
    Account,
    EmailTaken,
    NewRefreshToken,
    OutboxMessage,
    RateLimited,
    Refreshed,
    Revocations,
    Standing,
    UnknownChatt,
    User,
    UsernameTaken,
)
from models.sessions import (
    chatter_id_user,
    complete_login,
    end_all_sessions,
    end_chatter_id,
    load_revocations,
    revoke_token,
    rotate_refresh_token,
    token_revoked,
)
from models.standing import recent_standings, user_standing
from models.throttle import claim_attempt, count_attempt

__all__ = [
    "Account",
    "EmailTaken",
    "NewRefreshToken",
    "OutboxMessage",
    "RateLimited",
    "Refreshed",
    "Revocations",
    "Standing",
    "UnknownChatt",
    "User",
    "UsernameTaken",
    "account_for_login",
    "add_chatts",
    "add_chatts_for_chatter_ids",
    "change_password",
    "chatter_id_user",
    "chatts_version",
    "claim_attempt",
    "claim_due_message",
    "complete_login",
    "count_attempt",
    "create_password_user",
    "delete_chatt",
    "disable_totp",
    "enable_totp",
    "end_all_sessions",
    "end_chatter_id",
    "list_chatts",
    "list_events",
    "list_newest_versioned",
    "load_revocations",
    "password_hash_of",
    "purge_done_messages",
    "recent_standings",
    "record_event",
    "register_with_email",
    "replace_recovery_codes",
    "request_password_reset",
    "reset_password",
    "revoke_token",
    "rotate_refresh_token",
    "seconds_to_next_due",
    "set_email",
    "set_role",
    "set_totp_secret",
    "sign_in_google_user",
    "token_revoked",
    "totp_state",
    "upsert_google_user",
    "use_recovery_code",
    "use_totp_step",
    "user_by_name",
    "user_standing",
    "verify_email",
]
