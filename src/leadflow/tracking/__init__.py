"""Web tracking: visitors, sessions and page views, joined to the lead once it is known."""
