"""Qualify: criteria with levels and reasons, and the lifecycle stages."""
