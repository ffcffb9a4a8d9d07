"""Contextual bandits from logged feedback: the feedback type, off-policy evaluation, learners."""
