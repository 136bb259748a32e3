"""Outgoing webhooks: lead events pushed to other systems, signed, retried, logged."""
