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

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from leadflow.metrics.queries import MetricQuery
    from leadflow.metrics.service import compute as compute_metric
    from leadflow.pipeline import Activity, LeadResult, process, record_activity
    from leadflow.workspace import Workspace

# The public names load when first used: importing any leadflow module (the workspace, say) then
# pulls in only what that module needs, not the whole pipeline.
_PUBLIC = {
    "Activity": ("leadflow.pipeline", "Activity"),
    "LeadResult": ("leadflow.pipeline", "LeadResult"),
    "MetricQuery": ("leadflow.metrics.queries", "MetricQuery"),
    "Workspace": ("leadflow.workspace", "Workspace"),
    "compute_metric": ("leadflow.metrics.service", "compute"),
    "process": ("leadflow.pipeline", "process"),
    "record_activity": ("leadflow.pipeline", "record_activity"),
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        module, attribute = _PUBLIC[name]
        value = getattr(import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'leadflow' has no attribute {name!r}")


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
