"""Sources and campaigns: where leads come from and what they cost."""
