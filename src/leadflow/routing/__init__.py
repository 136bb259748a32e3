"""Routing: rules to a destination, assignment strategies, SLA deadlines."""
