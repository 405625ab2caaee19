"""Rewrite passes over the mlc IR, one module per pass; importing this package registers them.

Every module of this package is imported, so a new pass file registers itself by existing.
"""

import importlib
import pkgutil

__all__ = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
for _name in __all__:
    importlib.import_module(f"{__name__}.{_name}")
