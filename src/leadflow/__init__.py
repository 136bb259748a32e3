"""leadflow: capture, recognise, enrich, qualify, score and route every lead, and measure what works.

The public Python API is small::

    >>> from leadflow import Workspace, process
    >>> ws = Workspace.init("acme")                      # doctest: +SKIP
    >>> with ws.transaction() as conn:                   # doctest: +SKIP
    ...     result = process(ws, conn, {"email": "ada@example.com", "company": "Analytical Engines"})
    >>> result.owner_id, result.stage, result.score      # doctest: +SKIP
    ('ana', 'prospect', 10)

Everything else is internal and may change.
"""

__version__ = "0.1.0"

from leadflow.metrics.queries import MetricQuery
from leadflow.metrics.service import compute as compute_metric
from leadflow.pipeline import Activity, LeadResult, process, record_activity
from leadflow.workspace import Workspace

__all__ = [
    "Activity",
    "LeadResult",
    "MetricQuery",
    "Workspace",
    "__version__",
    "compute_metric",
    "process",
    "record_activity",
]
