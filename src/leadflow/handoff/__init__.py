"""Handoff from marketing to sales: the context package, acceptance and rejection."""
