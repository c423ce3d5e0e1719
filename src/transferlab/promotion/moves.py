"""Promote: check the gates and move the alias, audited; refuse (or force) when one fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transferlab.errors import TransferlabError
from transferlab.promotion.gates import Decision, check_target, evaluate_promotion
from transferlab.promotion.policy import Policy, load_policy
from transferlab.registry import Registry

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
    """What `promote` did: moved the alias (from -> to), or nothing when it already held it."""

    decision: Decision
    moved: bool
    forced: bool
    from_version: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "moved": self.moved,
            "forced": self.forced,
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
    with registry.session():
        decision = evaluate_promotion(registry, ref, target, policy)
        if decision.holder == decision.version_id:
            return Promotion(decision, moved=False, forced=False, from_version=decision.holder)
        if decision.failed and not force:
            raise PromotionRefused(decision)
        forced = bool(decision.failed)
        details = {
            "policy": decision.policy,
            "suite": decision.suite,
            "compared_with": decision.holder,
            "failed_gates": [
                {"gate": g.name, "lines": g.lines, "numbers": g.numbers} for g in decision.failed
            ],
            "gates": {g.name: g.status for g in decision.gates},
        }
        moved = registry.set_alias(
            decision.version_id,
            target,
            reason=reason.strip(),
            action=PROMOTE_ACTION,
            forced=forced,
            details=details,
        )
    return Promotion(decision, moved=True, forced=forced, from_version=moved["from"])
