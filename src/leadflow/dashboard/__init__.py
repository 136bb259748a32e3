"""The web dashboard: sign-in, the rep's inbox, lead pages, review queues, teams, metrics and models.

Routes parse, authorise and call the domain services; what a user may read is one WHERE clause
(:func:`leadflow.dashboard.access.readable_leads`) that every dashboard query goes through.
"""
