"""The simulated business: Northwind Analytics, a B2B analytics software company.

These are the knobs of the simulation, in one place: how many leads each source brings and at
what cost, how good they are, how fast reps respond, how leads move through the funnel. The
source ids match the starter ``leadflow.yaml``. Numbers are chosen to look like a real mid-size
B2B SaaS funnel (visit→lead a few percent, lead→MQL ~25-35%, MQL→SQL ~40%, win rate ~25%).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class SourceProfile:
    id: str
    leads_per_month: float
    quality: float  # shifts the lead's latent propensity to buy (logit scale)
    cost_per_lead: Decimal  # paid sources: spend is leads × CPL × noise; 0 for free sources
    fixed_monthly_cost: Decimal  # content, events, SDR salaries attributed to the source
    free_mail_share: float
    contexts: dict[str, float]
    web: bool  # arrives through the website (sessions and page views before capture)
    utm_medium: str | None
    campaigns: tuple[str, ...] = ()
    seasonal_peaks: dict[int, float] = field(default_factory=dict)  # month -> extra multiplier


def _source(
    id: str,
    per_month: float,
    quality: float,
    cpl: str,
    fixed: str,
    free_mail: float,
    contexts: dict[str, float],
    web: bool,
    medium: str | None,
    campaigns: tuple[str, ...] = (),
    peaks: dict[int, float] | None = None,
) -> SourceProfile:
    return SourceProfile(
        id=id,
        leads_per_month=per_month,
        quality=quality,
        cost_per_lead=Decimal(cpl),
        fixed_monthly_cost=Decimal(fixed),
        free_mail_share=free_mail,
        contexts=contexts,
        web=web,
        utm_medium=medium,
        campaigns=campaigns,
        seasonal_peaks=peaks or {},
    )


# fmt: off
#        id              leads/mo quality CPL   fixed/mo free-mail capture contexts                                                        web    utm medium
SOURCES: tuple[SourceProfile, ...] = (
    _source("google_ads",     150,  0.0,  "48", "0",    0.30, {"demo": 0.25, "contact": 0.2, "trial": 0.3, "quote": 0.1, "newsletter": 0.15}, True,  "cpc", ("search_brand", "search_generic")),
    _source("linkedin_ads",    75,  0.35, "95", "0",    0.08, {"demo": 0.3, "contact": 0.15, "trial": 0.2, "newsletter": 0.35},               True,  "paid_social", ("abm_enterprise", "lead_gen_forms")),
    _source("organic_search", 130, -0.1,  "0",  "3500", 0.35, {"newsletter": 0.35, "contact": 0.2, "trial": 0.3, "demo": 0.15},              True,  None),
    _source("webinar",         52,  0.05, "0",  "2200", 0.2,  {"event": 1.0},                                                                 True,  "event", ("webinar_series",), {3: 1.6, 10: 1.6}),
    _source("newsletter",      40, -0.35, "0",  "600",  0.45, {"newsletter": 0.8, "contact": 0.2},                                            True,  "email"),
    _source("referral",        16,  1.1,  "0",  "0",    0.1,  {"referral": 0.7, "demo": 0.3},                                                 False, None),
    _source("partner",         21,  0.6,  "0",  "1500", 0.05, {"quote": 0.5, "demo": 0.5},                                                    False, None),
    _source("outbound",       95, -0.6,  "0",  "9000", 0.02, {"call": 1.0},                                                                  False, None),
)
# fmt: on

# Demand by calendar month (January first): slower summers and Decembers.
SEASONALITY = (0.95, 1.05, 1.15, 1.05, 1.0, 0.9, 0.75, 0.8, 1.05, 1.15, 1.1, 0.8)
GROWTH_PER_MONTH = 0.015
# Share of leads that submit again later (returning people; identity must recognise them).
RESUBMIT_RATE = 0.06
# Anonymous visitors per web lead who never convert (traffic metrics).
ANONYMOUS_VISITORS_PER_LEAD = 1.5

# (industry, fit on the logit scale, share of companies)
INDUSTRIES = (
    ("software", 0.5, 0.22),
    ("financial services", 0.45, 0.12),
    ("healthcare", 0.3, 0.1),
    ("retail", 0.25, 0.12),
    ("manufacturing", 0.3, 0.12),
    ("logistics", 0.25, 0.07),
    ("education", -0.6, 0.08),
    ("government", -0.5, 0.05),
    ("media", -0.2, 0.06),
    ("non-profit", -0.8, 0.06),
)

# (country, Faker locale for names, fit, share)
COUNTRIES = (
    ("DE", "de_DE", 0.3, 0.25),
    ("GB", "en_GB", 0.15, 0.15),
    ("US", "en_US", 0.2, 0.2),
    ("FR", "fr_FR", 0.1, 0.1),
    ("NL", "nl_NL", 0.15, 0.08),
    ("AT", "de_AT", 0.2, 0.05),
    ("CH", "de_CH", 0.2, 0.05),
    ("IN", "en_IN", -0.5, 0.07),
    ("BR", "pt_BR", -0.4, 0.05),
)

# (typical employees, fit, share)
SIZES = ((5, -0.9, 0.18), (30, -0.4, 0.22), (120, 0.3, 0.22), (500, 0.5, 0.18), (2500, 0.45, 0.12), (12000, 0.2, 0.08))

# (job title, fit, share)
TITLES = (
    ("CEO", 0.5, 0.04),
    ("Founder", 0.4, 0.03),
    ("CTO", 0.6, 0.03),
    ("Chief Data Officer", 0.7, 0.01),
    ("VP Sales", 0.45, 0.03),
    ("VP Engineering", 0.5, 0.02),
    ("Head of Data", 0.7, 0.04),
    ("Director of Marketing", 0.4, 0.05),
    ("Director of Operations", 0.35, 0.04),
    ("IT Director", 0.45, 0.03),
    ("Marketing Manager", 0.15, 0.08),
    ("Data Team Lead", 0.35, 0.05),
    ("Product Manager", 0.15, 0.06),
    ("Sales Manager", 0.1, 0.05),
    ("Data Analyst", 0.0, 0.1),
    ("Software Engineer", -0.1, 0.08),
    ("Consultant", -0.2, 0.06),
    ("Marketing Specialist", -0.2, 0.06),
    ("Student", -1.6, 0.07),
    ("Intern", -1.3, 0.03),
    (None, -0.3, 0.04),
)

CONTEXT_INTENT = {
    "demo": 0.9,
    "trial": 0.6,
    "quote": 1.0,
    "contact": 0.4,
    "referral": 0.8,
    "event": 0.0,
    "newsletter": -0.7,
    "call": -0.2,
    "consultation": 0.7,
}

# Reps: median minutes to first touch, counted in working hours (hot leads faster, cold ones slower).
REP_SPEED_MINUTES = {"ana": 12, "ben": 45, "chloe": 25, "dmitri": 90, "emma": 20, "farid": 60}
# ... and how many new leads a rep can first-touch in a day; beyond that, the rest wait a day.
REP_DAILY_CAPACITY = {"ana": 14, "ben": 10, "chloe": 12, "dmitri": 8, "emma": 9, "farid": 7}
WORKDAY = (8, 18)  # local hours reps work

COMPANY_SUFFIXES = {
    "de_DE": ("GmbH", "AG", "GmbH & Co. KG", "SE"),
    "de_AT": ("GmbH", "AG"),
    "de_CH": ("AG", "GmbH"),
    "en_GB": ("Ltd", "plc", "Group", "Holdings"),
    "en_US": ("Inc.", "LLC", "Corp.", "Group"),
    "fr_FR": ("SAS", "SA", "SARL"),
    "nl_NL": ("B.V.", "N.V."),
    "en_IN": ("Pvt Ltd", "Ltd"),
    "pt_BR": ("Ltda.", "S.A."),
}
COMPANY_WORDS = (
    "Analytics",
    "Logistics",
    "Systems",
    "Partners",
    "Solutions",
    "Labs",
    "Industries",
    "Retail",
    "Health",
    "Capital",
    "Software",
    "Manufacturing",
    "Digital",
    "Foods",
    "Energy",
    "Mobility",
    "Media",
    "Works",
)

# Funnel dynamics given the latent propensity p (0..1) of the lead.
EMAILS_PER_LEAD = (2, 7)
OPEN_RATE = (0.18, 0.45)  # from p=0 to p=1
CLICK_RATE = (0.02, 0.12)
UNSUBSCRIBE_RATE = 0.012
BOUNCE_RATE = 0.01
DISQUALIFY_LOW_FIT = 0.45  # chance a contacted low-fit lead is disqualified by the rep
DEAL_SIZE_BY_EMPLOYEES = ((50, 4_000), (200, 12_000), (1000, 30_000), (5000, 60_000), (10**9, 110_000))
SALES_CYCLE_DAYS = (18, 110)
REFERRAL_RATE = 0.25  # customers who refer someone
