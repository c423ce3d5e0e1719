"""Promote: check the gates and move the alias, audited; refuse (or force) when one fails.

On a team registry (one with users, registry/identity.py) a protected alias (production) does
not move here: when the gates hold, promote opens a request that another person approves
(promotion/approvals.py); `force` is an admin's, and recorded as forced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.promotion.gates import Decision, check_target, evaluate_promotion
from transferlab.promotion.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from transferlab.registry import Registry
from transferlab.registry.identity import PROTECTED_ALIASES

PROMOTE_ACTION = "promote"


class PromotionRefused(TransferlabError):
    """At least one gate failed and the promotion was not forced; nothing changed."""

    def __init__(self, decision: Decision):
        self.decision = decision
        failed = decision.failed
        lines = [
            f"Refused to promote {decision.version_id} to {decision.target}: "
            f"{len(failed)} gate{'s' if len(failed) != 1 else ''} failed; nothing changed."
        ]
        lines += [f"  {g.name}: {line}" for g in failed for line in g.lines]
        super().__init__(
            "\n".join(lines),
            "Fix what the gates name, or move it anyway with --force (the audit log records "
            "the promotion as forced, with the failed gates).",
        )


@dataclass
class Promotion:
    """What `promote` did: moved the alias (from -> to), nothing when it already held it, or
    (a protected alias on a team registry) opened `request` for a second person to approve."""

    decision: Decision
    moved: bool
    forced: bool
    from_version: str | None
    request: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "moved": self.moved,
            "forced": self.forced,
            "request": self.request,
            "from": self.from_version,
            "to": self.decision.version_id,
            **self.decision.to_dict(),
        }


def promote(
    registry: Registry,
    ref: str,
    target: str,
    reason: str,
    *,
    force: bool = False,
    policy: Policy | None = None,
) -> Promotion:
    """Move `model@target` to the version when every gate holds (or `force`), audited.

    The gates are checked and the alias moved while this process holds the registry (its
    connection lock is re-entrant within a process and excludes every other transferlab
    process), so the holder the gates compared with is the one the move replaces.
    """
    check_target(target)
    if not reason or not reason.strip():
        raise TransferlabError(
            "A promotion needs a reason.", 'Say why: --reason "beats production on macro F1".'
        )
    policy = policy or load_policy()
    team = registry.team_mode()
    protected = team and target in PROTECTED_ALIASES  # moves only with a second person's yes
    four_eyes = protected and not force
    if team:  # each check refuses before anything is read or written
        if force:
            registry.require_action("promotion.force")
        registry.require_action("promotion.request" if protected else "alias.move")
        check_policy_choice(registry, policy)
    with registry.session():
        decision = evaluate_promotion(registry, ref, target, policy)
        if decision.holder == decision.version_id:
            return Promotion(decision, moved=False, forced=False, from_version=decision.holder)
        if decision.failed and not force:
            raise PromotionRefused(decision)
        details = gate_details(decision)
        if four_eyes:
            request = registry.open_promotion_request(
                decision.version_id, target, reason, evidence=details
            )
            return Promotion(decision, False, False, decision.holder, request=request)
        forced = bool(decision.failed) or protected  # an admin skipped the approval
        moved = registry.set_alias(
            decision.version_id,
            target,
            reason=reason.strip(),
            action=PROMOTE_ACTION,
            forced=forced,
            details=details,
        )
    return Promotion(decision, moved=True, forced=forced, from_version=moved["from"])


def gate_details(decision: Decision) -> dict[str, Any]:
    """The gates' verdicts as the audit log and a promotion request keep them."""
    return {
        "policy": decision.policy,
        "suite": decision.suite,
        "compared_with": decision.holder,
        "failed_gates": [
            {"gate": g.name, "lines": g.lines, "numbers": g.numbers} for g in decision.failed
        ],
        "gates": {g.name: g.status for g in decision.gates},
    }


def check_policy_choice(registry: Registry, policy: Policy) -> None:
    """On a team registry the gates are the packaged policy's; another file (--policy,
    TRANSFERLAB_PROMOTION_POLICY) is an admin's choice."""
    if policy.source != str(DEFAULT_POLICY_PATH):
        registry.require_action("policy.override")
