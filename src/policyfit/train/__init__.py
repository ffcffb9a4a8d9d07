"""Layer 2: the one training loop (jit-fused updates, evaluation, checkpoints, logging, progress).

``policyfit.train`` is both this package and the public function
:func:`policyfit.train.trainer.train`: once the package is imported, Python binds the name
``policyfit.train`` to it, so the package itself is callable and forwards to the function.
"""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from policyfit.train.trainer import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
