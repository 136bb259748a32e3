"""The predictive conversion model: training with a leakage guard, explanations, a registry of
versions, evaluation against the rule model and baselines, threshold advice and backtests.

Heavy libraries (LightGBM, scikit-learn) are imported by the modules that need them, never by
this package, so ``import leadflow`` and the request path stay light when no model is active.
"""
