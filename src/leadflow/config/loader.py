"""Load ``leadflow.yaml``: parse, validate, check references, and say exactly where it is wrong.

Errors name the key path (``owners[2].team``), the line in the file and what to change, for
YAML syntax errors, duplicate keys, schema errors and references to things that do not exist.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from leadflow.config.conditions import FieldCondition, condition_fields
from leadflow.config.workspace import WorkspaceConfig
from leadflow.errors import ConfigError, Problem
from leadflow.leads.fields import is_known_field

CONFIG_FILE = "leadflow.yaml"
CAPTURE_FIELDS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "referrer",
    "referrer_host",
    "landing_page",
    "capture_context",
)
_CUSTOM = re.compile(r"[a-z][a-z0-9_]{0,62}")
PathParts = Sequence[str | int]


@dataclass(frozen=True)
class LoadedConfig:
    config: WorkspaceConfig
    version: str
    text: str
    path: Path | None


def load_config_file(path: Path) -> LoadedConfig:
    """Read and validate a workspace file; raise :class:`ConfigError` naming every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist; create a workspace with `leadflow init DIR`",
            [Problem(field=str(path), message="file not found")],
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text", [Problem(field=str(path), message=str(exc))]) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", [Problem(field=str(path), message=exc.strerror or str(exc))]
        ) from None
    return load_config_text(text, path=path)


# libyaml's parser when PyYAML has it (several times faster: every command opens the workspace)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_config_text(text: str, *, path: Path | None = None) -> LoadedConfig:
    name = path.name if path else CONFIG_FILE
    try:
        root = yaml.compose(text, Loader=_LOADER)
        data = yaml.load(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"{name} is not valid YAML", [Problem(field="(syntax)", message=what, line=line)]) from None
    if root is None or data is None:
        raise ConfigError(
            f"{name} is empty",
            [Problem(field="workspace.name", message="the file needs at least `workspace: {name: ...}`", line=1)],
        )
    if not isinstance(root, MappingNode):
        raise ConfigError(
            f"{name} must be a mapping of sections (workspace:, scoring:, ...)",
            [Problem(field="(top level)", message="found a list or a single value", line=root.start_mark.line + 1)],
        )
    problems = list(_duplicate_keys(root))
    if problems:
        raise ConfigError(f"{name} has duplicate keys", problems)
    try:
        config = WorkspaceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"{name} is not valid ({exc.error_count()} problem{'s' if exc.error_count() != 1 else ''})",
            [_problem_from_pydantic(err, root) for err in exc.errors()],
        ) from None
    problems = [
        Problem(field=_display(path_), message=message, line=_locate(root, path_)[1])
        for path_, message in check_references(config)
    ]
    if problems:
        raise ConfigError(
            f"{name} is not valid ({len(problems)} problem{'s' if len(problems) != 1 else ''})",
            problems,
        )
    version = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]
    return LoadedConfig(config=config, version=version, text=text, path=path)


def check_references(config: WorkspaceConfig) -> Iterable[tuple[PathParts, str]]:
    """Cross-checks pydantic cannot do field by field: ids unique, references resolve."""
    from leadflow.events import ACTIVITY_TYPES

    for section in ("teams", "owners", "sources", "campaigns", "webhooks"):
        yield from _unique_ids((section,), getattr(config, section))
    yield from _unique_ids(("scoring", "rules"), config.scoring.rules)
    yield from _unique_ids(("routing", "rules"), config.routing.rules)
    yield from _unique_ids(("sla", "policies"), config.sla.policies)

    teams = {t.id for t in config.teams}
    owners = {o.id for o in config.owners}
    stages = config.stages

    for i, owner in enumerate(config.owners):
        if owner.team is not None and owner.team not in teams:
            yield ("owners", i, "team"), _unknown("team", owner.team, teams)
        if owner.manager is not None and owner.manager not in owners:
            yield ("owners", i, "manager"), _unknown("owner", owner.manager, owners)

    def destination(path: PathParts, dest: Any) -> Iterable[tuple[PathParts, str]]:
        if dest.team is not None:
            if dest.team not in teams:
                yield (*path, "team"), _unknown("team", dest.team, teams)
            elif not config.team_members(dest.team):
                yield (*path, "team"), f"team {dest.team!r} has no active owners to assign leads to"
        if dest.queue is not None and dest.queue not in teams:
            yield (*path, "queue"), _unknown("team", dest.queue, teams)
        if dest.owner is not None and dest.owner not in owners:
            yield (*path, "owner"), _unknown("owner", dest.owner, owners)

    criteria = tuple(config.qualification.criteria)
    rules = tuple(r.id for r in config.scoring.rules)
    for name, criterion in config.qualification.criteria.items():
        for j, level in enumerate(criterion.levels):
            yield from _fields(
                ("qualification", "criteria", name, "levels", j, "when"),
                level.when,
                allow_event=False,
                allow_criteria=False,
                engagement_rules=rules,
            )
    for i, rule in enumerate(config.qualification.review):
        yield from _fields(
            ("qualification", "review", i, "when"),
            rule.when,
            allow_event=False,
            criteria=criteria,
            engagement_rules=rules,
        )
    yield from _unique_ids(("qualification", "review"), config.qualification.review)
    for key in ("pql", "pqa"):
        spec = getattr(config.qualification, key)
        if spec is not None and spec.event not in ACTIVITY_TYPES:
            yield ("qualification", key, "event"), _unknown("event type", spec.event, ACTIVITY_TYPES)

    for i, rule in enumerate(config.routing.rules):
        yield from destination(("routing", "rules", i), rule)
        yield from _fields(
            ("routing", "rules", i, "when"), rule.when, allow_event=False, criteria=criteria, engagement_rules=rules
        )
    if config.routing.fallback is not None:
        fb = config.routing.fallback
        yield from destination(("routing", "fallback"), fb)
    elif config.owners:
        yield (
            ("routing", "fallback"),
            ("required when owners are declared, so that every lead gets an owner; e.g. `fallback: {team: sales}`"),
        )

    for i, rule in enumerate(config.qualification.stage_rules):
        if rule.to not in stages.order and rule.to not in stages.side:
            yield ("qualification", "stage_rules", i, "to"), _unknown("stage", rule.to, [*stages.order, *stages.side])
        elif rule.to == stages.order[0]:
            yield (
                ("qualification", "stage_rules", i, "to"),
                "every lead starts in the first stage; a rule cannot move to it",
            )
        yield from _fields(
            ("qualification", "stage_rules", i, "when"),
            rule.when,
            allow_event=False,
            criteria=criteria,
            engagement_rules=rules,
        )

    for i, rule in enumerate(config.scoring.rules):
        yield from _fields(
            ("scoring", "rules", i, "when"),
            rule.when,
            allow_event=bool(rule.on_event),
            allow_criteria=False,
            why_not_criteria="criteria are judged after the score (they may weigh it), so scoring rules cannot use them",
        )
        for j, event_type in enumerate(rule.on_event or ()):
            if event_type not in ACTIVITY_TYPES:
                yield ("scoring", "rules", i, "on_event", j), _unknown("event type", event_type, ACTIVITY_TYPES)

    handoff = config.handoff
    for key in ("stage", "accepted_stage"):
        if getattr(handoff, key) not in stages.order:
            yield ("handoff", key), _unknown("funnel stage", getattr(handoff, key), stages.order)
    if {handoff.stage, handoff.accepted_stage} <= set(stages.order) and stages.order.index(
        handoff.accepted_stage
    ) <= stages.order.index(handoff.stage):
        yield ("handoff", "accepted_stage"), f"must come after the handoff stage {handoff.stage!r} in the funnel"
    every_stage = [*stages.order, *stages.side]
    if handoff.otherwise not in every_stage:
        yield ("handoff", "otherwise"), _unknown("stage", handoff.otherwise, every_stage)
    for i, rule in enumerate(handoff.on_reject):
        if rule.to not in every_stage:
            yield ("handoff", "on_reject", i, "to"), _unknown("stage", rule.to, every_stage)
        for j, reason in enumerate(rule.reasons or ()):
            if reason not in handoff.reasons:
                yield ("handoff", "on_reject", i, "reasons", j), _unknown("rejection reason", reason, handoff.reasons)
        yield from _fields(
            ("handoff", "on_reject", i, "when"), rule.when, allow_event=False, criteria=criteria, engagement_rules=rules
        )

    if not config.sla.business_hours.hours and any(p.business_hours for p in config.sla.policies):
        yield ("sla", "business_hours", "hours"), "policies count business hours, but no day has any"

    for i, policy in enumerate(config.sla.policies):
        yield from _fields(
            ("sla", "policies", i, "when"), policy.when, allow_event=False, criteria=criteria, engagement_rules=rules
        )

    from leadflow.config.workspace import FORM_FIELDS

    for i, rule in enumerate(config.capture.source_rules):
        for name in condition_fields(rule.when):
            if name not in CAPTURE_FIELDS:
                yield ("capture", "source_rules", i, "when"), _unknown("field", name, CAPTURE_FIELDS)
    for context, form in config.capture.forms.items():
        for part in ("required", "optional"):
            for j, name in enumerate(getattr(form, part)):
                if not (name in FORM_FIELDS or (name.startswith("custom.") and _CUSTOM.fullmatch(name[7:]))):
                    yield (
                        ("capture", "forms", context, part, j),
                        _unknown("form field", name, [*FORM_FIELDS, "custom.<name>"]),
                    )

    sources = {s.id for s in config.sources}
    for i, campaign in enumerate(config.campaigns):
        if campaign.source not in sources:
            yield ("campaigns", i, "source"), _unknown("source", campaign.source, sources)
        months = [s.month for s in campaign.spend]
        for j, month in enumerate(months):
            if month in months[:j]:
                yield ("campaigns", i, "spend", j, "month"), f"spend for {month} is given twice"

    yield from _check_nurture(config, every_stage, criteria, rules, ACTIVITY_TYPES)


def _check_nurture(
    config: WorkspaceConfig,
    every_stage: Sequence[str],
    criteria: tuple[str, ...],
    rules: tuple[str, ...],
    activity_types: Sequence[str],
) -> Iterable[tuple[PathParts, str]]:
    from leadflow.nurture.render import check as check_template

    nurture = config.nurture
    yield from _unique_ids(("nurture", "sequences"), nurture.sequences)
    for name, template in nurture.templates.items():
        problem = check_template(template)
        if problem:
            yield ("nurture", "templates", name), f"template does not parse: {problem}"
    for i, seq in enumerate(nurture.sequences):
        path = ("nurture", "sequences", i)
        yield from _fields((*path, "when"), seq.when, allow_event=False, criteria=criteria, engagement_rules=rules)
        if seq.goal_stage not in every_stage:
            yield (*path, "goal_stage"), _unknown("stage", seq.goal_stage, every_stage)
        for j, stage in enumerate(seq.exit_stages):
            if stage not in every_stage:
                yield (*path, "exit_stages", j), _unknown("stage", stage, every_stage)
        for j, type_ in enumerate(seq.exit_on):
            if type_ not in activity_types:
                yield (*path, "exit_on", j), _unknown("activity type", type_, activity_types)
        ids = [st.id for st in seq.steps if st.id]
        for j, step_id in enumerate(ids):
            if step_id in ids[:j]:
                yield (*path, "steps"), f"step id {step_id!r} is used twice"
        for j, step in enumerate(seq.steps):
            at = (*path, "steps", j)
            if step.send is not None and step.send not in nurture.templates:
                yield (*at, "send"), _unknown("template", step.send, nurture.templates)
            if step.stage is not None and step.stage not in every_stage:
                yield (*at, "stage"), _unknown("stage", step.stage, every_stage)
            if step.wait_until is not None and step.wait_until.event and step.wait_until.event not in activity_types:
                yield (*at, "wait_until", "event"), _unknown("activity type", step.wait_until.event, activity_types)
            if step.wait_until is not None and step.wait_until.field:
                yield from _fields(
                    (*at, "wait_until", "field"),
                    FieldCondition(field=step.wait_until.field, exists=True),
                    allow_event=False,
                    criteria=criteria,
                    engagement_rules=rules,
                )
            if step.branch is not None:
                yield from _fields(
                    (*at, "branch", "if"), step.branch.if_, allow_event=False, criteria=criteria, engagement_rules=rules
                )
                for key, target in (("goto", step.branch.goto), ("else", step.branch.else_)):
                    if target is not None and target not in ids:
                        yield (*at, "branch", key), _unknown("step id", target, ids)


def _unique_ids(path: PathParts, items: Sequence[Any]) -> Iterable[tuple[PathParts, str]]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.id in seen:
            yield (*path, i, "id"), f"id {item.id!r} is used twice in {'.'.join(map(str, path))}"
        seen.add(item.id)


def _fields(
    path: PathParts,
    cond: Any,
    *,
    allow_event: bool,
    criteria: tuple[str, ...] = (),
    allow_criteria: bool = True,
    engagement_rules: tuple[str, ...] = (),
    why_not_criteria: str = "a criterion cannot depend on the criteria",
) -> Iterable[tuple[PathParts, str]]:
    from leadflow.leads.fields import BUILTIN_CRITERIA, FIELD_BY_NAME

    for name in condition_fields(cond):
        if name.startswith("event.") and not allow_event:
            yield path, f"field {name!r}: `event.` fields exist only in rules with `on_event`"
        elif name.startswith("criteria.") and not allow_criteria:
            yield path, f"field {name!r}: {why_not_criteria}"
        elif name.startswith("criteria.") and not is_known_field(name, criteria):
            yield path, _unknown("criterion", name.split(".", 1)[1], [*criteria, *BUILTIN_CRITERIA])
        elif name.startswith("engagement.") and not is_known_field(name, criteria, engagement_rules):
            yield path, _unknown("scoring rule", name.split(".", 1)[1], engagement_rules)
        elif not is_known_field(name, criteria, engagement_rules):
            known = [f for f, spec in FIELD_BY_NAME.items() if spec.kind != "json"]
            yield (
                path,
                _unknown(
                    "field", name, [*known, "custom.<name>", "event.<name>", "criteria.<name>", "engagement.<rule>"]
                ),
            )


def _unknown(kind: str, value: str, known: Iterable[str]) -> str:
    known = sorted(known)
    close = difflib.get_close_matches(value, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return f"unknown {kind} {value!r}{hint}; known: {listed or 'none declared'}"


def _duplicate_keys(node: Node, path: tuple[str | int, ...] = ()) -> Iterable[Problem]:
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else str(key)
            line = key.start_mark.line + 1
            if name in seen:
                yield Problem(
                    field=_display((*path, name)),
                    message=f"key given twice (first on line {seen[name]}); YAML would silently keep the last one",
                    line=line,
                )
            seen.setdefault(name, line)
            yield from _duplicate_keys(value, (*path, name))
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, i))


def _locate(root: Node, loc: PathParts) -> tuple[list[str | int], int]:
    """Follow a validation location through the YAML nodes: the key path found, and its line."""
    node: Node = root
    line = root.start_mark.line + 1
    found: list[str | int] = []
    for part in loc:
        if isinstance(node, MappingNode) and isinstance(part, str):
            wanted = {"in_": "in", "not_": "not"}.get(part, part)
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value == wanted:
                    node, line = value, key.start_mark.line + 1
                    found.append(wanted)
                    break
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
            found.append(part)
    return found, line


def _display(parts: PathParts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _all_config_keys() -> set[str]:
    keys: set[str] = set()

    def visit(model: type[BaseModel]) -> None:
        for name, info in model.model_fields.items():
            keys.add(info.alias or name)
        for sub in _submodels(model):
            if sub is not model and (sub.__name__ not in seen):
                seen.add(sub.__name__)
                visit(sub)

    seen: set[str] = set()
    visit(WorkspaceConfig)
    return keys


def _submodels(model: type[BaseModel]) -> Iterable[type[BaseModel]]:
    import typing

    def walk(tp: Any) -> Iterable[type[BaseModel]]:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            yield tp
        for arg in typing.get_args(tp):
            yield from walk(arg)

    for info in model.model_fields.values():
        yield from walk(info.annotation)


def _problem_from_pydantic(err: Any, root: Node) -> Problem:
    loc = tuple(err["loc"])
    found, line = _locate(root, loc)
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    field = list(found)
    if kind == "missing" and loc and isinstance(loc[-1], str):
        field.append(loc[-1])
        message = "required key is missing"
    elif kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        close = difflib.get_close_matches(key, sorted(_all_config_keys()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; remove it or check its spelling"
        message = f"unknown key {key!r}{hint}"
    elif "input" in err and kind not in ("missing",) and not isinstance(err["input"], dict | list):
        message = f"{message} (got {err['input']!r})"
    return Problem(field=_display(field), message=message, line=line)
