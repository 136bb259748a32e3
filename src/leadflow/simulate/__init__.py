"""A realistic synthetic business for the demo, the tests and the benchmarks."""

from leadflow.simulate.engine import Summary, sample_leads, simulate

__all__ = ["Summary", "sample_leads", "simulate"]
