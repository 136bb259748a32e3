"""Scoring: the points rule model (and, later, the predictive model), each explained."""
