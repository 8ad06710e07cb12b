"""chatterd's own credentials: tokens, chatterIDs, refresh, passwords, TOTP, signing keys, throttling, revocations."""
