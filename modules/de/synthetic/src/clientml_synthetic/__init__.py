"""Synthetic source data for clientml: ``clients.csv``, ``sales.csv`` and ``ground_truth.csv``.

A tool behind ``clientml generate``, not runtime code: the serving image does not install it.

The files follow the source data contract (``CONTRACT.md`` section 1), so everything downstream (load,
quarantine, feature_store, training, scoring) can be exercised end to end with data whose true label
mechanism is known. The stages, one module each, run chunk by chunk (:mod:`~clientml_synthetic.dataset`):

1. :mod:`~clientml_synthetic.clients` - client profiles;
2. :mod:`~clientml_synthetic.sales` - each client's activity pattern, then its sales;
3. :mod:`~clientml_synthetic.labels` - the churn label from observable features, and its ground truth;
4. :mod:`~clientml_synthetic.corrupt` - bad and duplicated rows, one kind per contract rule;
5. :mod:`~clientml_synthetic.render` and :mod:`~clientml_synthetic.write` - the CSV text, written atomically.

:mod:`~clientml_synthetic.shift` makes a drop whose behaviour has moved (``generate(shift=...)``).
"""

from clientml_synthetic.corrupt import CLIENT_CORRUPTIONS, SALES_CORRUPTIONS
from clientml_synthetic.dataset import GenerationSummary, generate
from clientml_synthetic.labels import LabelFeatures, label_logit
from clientml_synthetic.render import CLIENT_COLUMNS, GROUND_TRUTH_COLUMNS, SALES_COLUMNS
from clientml_synthetic.story import AS_OF

__all__ = [
    "AS_OF",
    "CLIENT_COLUMNS",
    "CLIENT_CORRUPTIONS",
    "GROUND_TRUTH_COLUMNS",
    "SALES_COLUMNS",
    "SALES_CORRUPTIONS",
    "GenerationSummary",
    "LabelFeatures",
    "generate",
    "label_logit",
]
