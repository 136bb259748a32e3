"""The HTTP API: thin routers over the domain functions."""
