"""The worker: timed work (score decay, SLA timers, nurture steps) claimed from the database."""
