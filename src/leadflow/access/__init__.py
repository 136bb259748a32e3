"""Access: API keys with scopes (and, later, users and roles)."""
