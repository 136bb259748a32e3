"""Opportunities and revenue: what leads turn into."""
