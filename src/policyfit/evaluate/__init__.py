"""Layer 2: rollouts, normalized scores, OPE, aggregate statistics, certificates.

``policyfit.evaluate`` is both this package and the public function
:func:`policyfit.evaluate.rollout.evaluate`: once the package is imported, Python binds the name
``policyfit.evaluate`` to it, so the package itself is callable and forwards to the function.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from policyfit.evaluate.rollout import evaluate

        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
