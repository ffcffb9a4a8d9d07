"""The :class:`Dataset`, its readers and writers, validation and samplers."""

from policyfit.data.dataset import ARRAY_FIELDS, Dataset, Episode
from policyfit.data.validate import TruncatedEpisodeWarning

__all__ = ["ARRAY_FIELDS", "Dataset", "Episode", "TruncatedEpisodeWarning"]
