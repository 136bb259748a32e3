"""Enrich: fields derived from what the lead gave (domains, free-mail, size band, seniority)."""
