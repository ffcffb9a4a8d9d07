"""Contextual bandits from logged feedback: the feedback type, off-policy evaluation, learners.

* :mod:`policyfit.bandit.feedback`: :class:`BanditFeedback` (OBP's ``bandit_feedback`` fields,
  validated), ``.npz`` files and OBP-shaped dicts, one-step :class:`~policyfit.data.Dataset`.
"""

from policyfit.bandit.feedback import (
    BanditFeedback,
    from_dataset,
    load_feedback,
    save_feedback,
)

__all__ = ["BanditFeedback", "from_dataset", "load_feedback", "save_feedback"]
