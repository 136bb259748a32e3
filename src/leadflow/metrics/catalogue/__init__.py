"""The KPI catalogue of ``shared/spec/kpis.md``: every metric under its id, with its computation.

Importing this package registers every metric (one module per domain: :mod:`.volume`,
:mod:`.conversion`, :mod:`.sales`, :mod:`.responsiveness`, :mod:`.money`, :mod:`.web`,
:mod:`.email_social`; :mod:`.define` holds how a metric is declared and what most of them share).

Each computation builds SQL (SQLAlchemy Core) that the database aggregates; Python only merges
the few aggregate rows per (period, group) and does the final arithmetic of composite metrics
(e.g. LTV / CAC). Row shapes by unit:

- count / money: ``value`` (money as a decimal string, with ``currency``);
- rate: ``value``, ``numerator``, ``denominator``, ``ci_low``/``ci_high`` (95% Wilson), ``reason``
  when the denominator is 0 (``value`` is then null);
- duration: ``value`` (= median), ``median``, ``mean``, ``p90`` in hours, ``count``, ``pending``.
"""

from __future__ import annotations

# The modules register their metrics as they are imported: this order is the catalogue's order
# (``leadflow metrics``, ``GET /api/v1/metrics``).
# isort: off
from leadflow.metrics.catalogue.define import Rows, legacy_metric, metric
from leadflow.metrics.catalogue.volume import (
    inbound_lead_volume,
    lead_quality_score,
    monthly_signups,
    mqls,
    pqas,
    pqls,
    sqls,
    sqos,
)
from leadflow.metrics.catalogue.conversion import (
    CURVE_DAYS,
    conversion_curve,
    disqualification_rate,
    lead_conversion_rate,
    lead_to_opportunity_rate,
    lead_to_sql_rate,
    mql_criteria_rate,
    qualification_rate,
    sql_to_opportunity_rate,
)
from leadflow.metrics.catalogue.sales import (
    close_rate,
    deal_velocity,
    forecasted_win_rate,
    opportunity_creation_velocity,
    opportunity_to_customer_rate,
    pipeline_growth,
    pipeline_value,
    pipeline_velocity,
    stage_reached,
    stage_velocity,
    win_rate,
)
from leadflow.metrics.catalogue.responsiveness import (
    ENGAGED,
    first_contact_engagement_rate,
    response_time,
    time_to_first_contact,
    time_to_first_meeting,
)
from leadflow.metrics.catalogue.money import (
    SPEND_DIMENSIONS,
    cac,
    cost_per_lead,
    customer_segmentation,
    ltv,
    ltv_to_cac,
    market_share,
    payback_period,
    pipeline_contribution,
    revenue_by_source,
    revenue_growth,
    roas,
)
from leadflow.metrics.catalogue.web import (
    CAPTURES,
    SESSION_DIMENSIONS,
    conversion_rate,
    landing_page_conversion_rate,
    new_visitors,
    page_views,
    referral_conversion_rate,
    referral_mql_rate,
    signup_source_quality_rate,
    signup_to_subscriber_rate,
    traffic_source_distribution,
    trial_to_paid_rate,
    unique_page_views,
    unique_visitors,
    viral_cycle_time,
    virality_coefficient,
    website_traffic,
)
from leadflow.metrics.catalogue.email_social import (
    click_through_rate,
    likes_shares_comments,
    newsletter_subscription_growth,
    open_rate,
    response_rate,
    unsubscribe_rate,
)
# isort: on

__all__ = [
    "CAPTURES",
    "CURVE_DAYS",
    "ENGAGED",
    "SESSION_DIMENSIONS",
    "SPEND_DIMENSIONS",
    "Rows",
    "cac",
    "click_through_rate",
    "close_rate",
    "conversion_curve",
    "conversion_rate",
    "cost_per_lead",
    "customer_segmentation",
    "deal_velocity",
    "disqualification_rate",
    "first_contact_engagement_rate",
    "forecasted_win_rate",
    "inbound_lead_volume",
    "landing_page_conversion_rate",
    "lead_conversion_rate",
    "lead_quality_score",
    "lead_to_opportunity_rate",
    "lead_to_sql_rate",
    "legacy_metric",
    "likes_shares_comments",
    "ltv",
    "ltv_to_cac",
    "market_share",
    "metric",
    "monthly_signups",
    "mql_criteria_rate",
    "mqls",
    "new_visitors",
    "newsletter_subscription_growth",
    "open_rate",
    "opportunity_creation_velocity",
    "opportunity_to_customer_rate",
    "page_views",
    "payback_period",
    "pipeline_contribution",
    "pipeline_growth",
    "pipeline_value",
    "pipeline_velocity",
    "pqas",
    "pqls",
    "qualification_rate",
    "referral_conversion_rate",
    "referral_mql_rate",
    "response_rate",
    "response_time",
    "revenue_by_source",
    "revenue_growth",
    "roas",
    "signup_source_quality_rate",
    "signup_to_subscriber_rate",
    "sql_to_opportunity_rate",
    "sqls",
    "sqos",
    "stage_reached",
    "stage_velocity",
    "time_to_first_contact",
    "time_to_first_meeting",
    "traffic_source_distribution",
    "trial_to_paid_rate",
    "unique_page_views",
    "unique_visitors",
    "unsubscribe_rate",
    "viral_cycle_time",
    "virality_coefficient",
    "website_traffic",
    "win_rate",
]
