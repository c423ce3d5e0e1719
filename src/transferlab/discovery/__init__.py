"""Discovery: which registered models could serve a text-classification task? Filters and
semantic search shortlist them, a cross-validated probe on frozen embeddings of the user's own
examples scores them, and the best one comes back with its fine-tuning settings.

    from transferlab.discovery import discover
    result = discover(query="short English support messages", n_per_class=16)
    result.table, result.recommendation   # pass the latter to run_template("finetune", ...)
"""

from transferlab.discovery.config import DiscoveryConfig
from transferlab.discovery.recommend import finetune_command
from transferlab.discovery.recording import recommendation
from transferlab.discovery.run import DiscoveryResult, discover

__all__ = [
    "DiscoveryConfig",
    "DiscoveryResult",
    "discover",
    "finetune_command",
    "recommendation",
]
