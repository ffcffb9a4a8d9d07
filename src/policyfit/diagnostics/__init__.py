"""Dataset diagnostics: quality measures and data cards (layer 1; imports only ``policyfit.data``).

>>> import policyfit
>>> card = policyfit.diagnose(policyfit.make_dataset("hopper-medium"))   # doctest: +SKIP
>>> card.render()                                                          # doctest: +SKIP
>>> card.to_dict()["state_action_coverage"]["saco"]                        # doctest: +SKIP

Modules: :mod:`~policyfit.diagnostics.coverage` (TQ, SACo), :mod:`~policyfit.diagnostics.neighbors`
(action consistency, transition diversity), :mod:`~policyfit.diagnostics.anomalies` (per-transition
flags), :mod:`~policyfit.diagnostics.card` (the card and :func:`diagnose`).
"""

from policyfit.diagnostics.card import DataCard, diagnose

__all__ = ["DataCard", "diagnose"]
