"""Drift monitoring: the current ``feature_store`` and scores compared with the champion's reference profile.

| module | what lives there |
|---|---|
| ``profile.py`` | the reference profile in a bundle (``reference_profile.json``), the binning both sides share |
| ``importance.py`` | each feature's share of the model's importance (which features the model relies on) |
| ``drift.py`` | the statistics (PSI, Jensen-Shannon distance), the thresholds, one feature's comparison |
| ``result.py`` | :class:`FeatureDrift` and :class:`MonitorResult` |
| ``store.py`` | the ``drift_report`` table and the ``predictions`` read |
| ``report.py`` | the self-contained HTML report |
| ``run.py`` | :func:`run_monitor`, the entry point of the CLI and the DAG |

``run_monitor``, ``MonitorResult`` and ``FeatureDrift`` are importable from here; they are loaded on first
use, so that reading a bundle (which imports :mod:`.profile`) does not import scipy, the warehouse or
matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clientml_mle.monitor.result import FeatureDrift, MonitorResult
    from clientml_mle.monitor.run import run_monitor

__all__ = ["FeatureDrift", "MonitorResult", "run_monitor"]
_HOMES = {"FeatureDrift": "result", "MonitorResult": "result", "run_monitor": "run"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
