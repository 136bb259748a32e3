"""Capture: payload schemas, normalisation and validation of everything that arrives."""
