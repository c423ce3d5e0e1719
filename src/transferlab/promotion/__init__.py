"""Promotion with gates: move a model's `staging` / `production` alias only on evidence.

A promotion is checked against a policy (YAML, see promotion_policy.yaml for the format):

- evidence: the version has results from a succeeded benchmark run on the suite its model's
  task requires, for every key metric of that task;
- no_regression: no key metric is worse than the alias's current holder (same model) by more
  than the metric's margin, compared on the same suite, suite task and split, mean over seeds;
- licence (production): the licence allows commercial use, taken from the nearest model in the
  lineage that records one, and no model the version derives from forbids commercial use;
- staging_first (production, a policy option): the version has been the model's staging
  version before.

A refusal raises PromotionRefused with every failed gate and its numbers; nothing changes.
`force=True` moves the alias anyway and the audit entry says so (forced, failed gates in
`details`). The suite summaries here also feed `transferlab leaderboard`.

Modules: policy (the YAML policy, loaded and checked), evidence (benchmark results summarised
over seeds; lineage and licence), gates (each gate and the decision), moves (`promote`: moving
the alias, audited; a request on a team registry), approvals (four-eyes: approve, reject),
ranking (`leaderboard`). Everything is importable from
`transferlab.promotion`.
"""

from transferlab.promotion.approvals import Approval, approve, reject
from transferlab.promotion.evidence import (
    EVIDENCE_RUN_KIND,
    Summary,
    SummaryKey,
    allows_commercial_use,
    effective_licence,
    lineage_models,
    suite_summaries,
    suites_with_results,
    summarise,
)
from transferlab.promotion.gates import TARGETS, Decision, Gate, evaluate_promotion
from transferlab.promotion.moves import PROMOTE_ACTION, Promotion, PromotionRefused, promote
from transferlab.promotion.policy import (
    DEFAULT_POLICY_PATH,
    POLICY_ENV,
    Policy,
    PolicyError,
    TaskPolicy,
    load_policy,
    parse_policy,
    policy_path,
)
from transferlab.promotion.ranking import DEFAULT_KEY_METRICS, leaderboard

__all__ = [
    "Approval",
    "DEFAULT_KEY_METRICS",
    "DEFAULT_POLICY_PATH",
    "EVIDENCE_RUN_KIND",
    "POLICY_ENV",
    "PROMOTE_ACTION",
    "TARGETS",
    "Decision",
    "Gate",
    "Policy",
    "PolicyError",
    "Promotion",
    "PromotionRefused",
    "Summary",
    "SummaryKey",
    "TaskPolicy",
    "allows_commercial_use",
    "approve",
    "effective_licence",
    "evaluate_promotion",
    "leaderboard",
    "lineage_models",
    "load_policy",
    "parse_policy",
    "policy_path",
    "promote",
    "reject",
    "suite_summaries",
    "suites_with_results",
    "summarise",
]
