"""Leads: the lead record, its fields, reads with access control, export and erasure."""
