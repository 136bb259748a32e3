"""Imports: CSV files of leads and events, through the same pipeline, resumable."""
