"""Dataset diagnostics: quality measures and data cards (layer 1; imports only ``policyfit.data``).

>>> import policyfit
>>> card = policyfit.diagnose(policyfit.make_dataset("hopper-medium"))   # doctest: +SKIP
>>> card.render()                                                          # doctest: +SKIP
>>> card.to_dict()["state_action_coverage"]["saco"]                        # doctest: +SKIP

Modules: :mod:`~policyfit.diagnose.coverage` (TQ, SACo), :mod:`~policyfit.diagnose.neighbors`
(action consistency, transition diversity), :mod:`~policyfit.diagnose.anomalies` (per-transition
flags), :mod:`~policyfit.diagnose.card` (the card and :func:`diagnose`).

The public function ``policyfit.diagnose`` and this package share a name: once the package is
imported, Python binds ``policyfit.diagnose`` to it. The package is therefore callable and calling
it is calling :func:`~policyfit.diagnose.card.diagnose`, so ``policyfit.diagnose(ds)`` works
whichever of the two the name points to.
"""

import sys
import types

from policyfit.diagnose.card import DataCard, diagnose

__all__ = ["DataCard", "diagnose"]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs) -> DataCard:
        return diagnose(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
