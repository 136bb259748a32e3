"""Notifications to people (owners, managers): queued in the transaction that caused them, sent
by the worker over SMTP (or written to the workspace outbox when no SMTP server is configured)."""
