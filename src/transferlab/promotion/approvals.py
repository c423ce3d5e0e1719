"""Four-eyes promotion on a team registry: approve a request (the gates are checked again, by
the approver's policy, and the alias moves with the decision) or reject it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transferlab.promotion.gates import Decision, evaluate_promotion
from transferlab.promotion.moves import PromotionRefused, check_policy_choice, gate_details
from transferlab.promotion.policy import Policy, load_policy
from transferlab.registry import Registry


@dataclass
class Approval:
    """An approved request: the alias moved from `from_version` to the requested version."""

    request: dict
    decision: Decision
    from_version: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request, "from": self.from_version, **self.decision.to_dict()}


def approve(
    registry: Registry, request_id: int, *, reason: str | None = None, policy: Policy | None = None
) -> Approval:
    """Approve someone else's open request: the gates must hold now (against today's holder);
    then the alias moves and the request closes in one transaction. A refusal changes nothing
    and leaves the request open."""
    policy = policy or load_policy()
    user = registry.require_action("promotion.approve")
    check_policy_choice(registry, policy)
    with registry.session():
        request = registry.promotion_request(request_id)
        if request["status"] != "open" or user is None or user.name == request["requester"]:
            registry.approve_promotion_request(request_id, reason=reason)  # refuses, and says why
        decision = evaluate_promotion(registry, request["version_id"], request["alias"], policy)
        if decision.failed:
            raise PromotionRefused(decision)
        evidence = {"approval_gates": gate_details(decision)}
        done = registry.approve_promotion_request(request_id, reason=reason, evidence=evidence)
    return Approval(request=done, decision=decision, from_version=done["from"])


def reject(registry: Registry, request_id: int, *, reason: str) -> dict:
    """Reject someone else's open request (an approver), or withdraw one's own."""
    return registry.reject_promotion_request(request_id, reason=reason)
