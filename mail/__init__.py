"""Mail: the outbox sender, the SMTP relay, the messages, and the addresses they go to."""
