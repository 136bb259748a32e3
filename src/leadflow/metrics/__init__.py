"""Metrics: the KPI registry, computed in the database from leads, events, opportunities and spend."""
