"""Storage: engines, tables and migrations."""
