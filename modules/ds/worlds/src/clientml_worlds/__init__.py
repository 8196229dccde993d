"""Worlds: generating processes for the model-quality benchmark, each with its true probability.

Each world writes ``clients.csv`` and ``sales.csv`` in the source contract's format (loadable by
``clientml pipeline`` unchanged) and ``ground_truth.csv`` (``client_id``, ``p_true``): the probability that
client's label is 1, a function of what the two CSVs show before the client's as-of date only, from which
the label in ``clients.csv`` was drawn. The worlds are written independently of the default generator
(``clientml_synthetic``) and of each other: other activity models, label mechanisms, vocabularies, id
formats and as-of dates. Their processes are in each module's docstring:

- :mod:`~clientml_worlds.drop` - a Poisson process with a change point; the label reads the drop between
  the last 90 days and the 90 before;
- :mod:`~clientml_worlds.interaction` - gamma-Poisson monthly counts; the label reads interactions of the
  profile with behaviour (region x discounts, age x channel, segment x activity);
- :mod:`~clientml_worlds.seasonal` - a seasonal Hawkes-like process, clients observed at staggered dates;
  the label reads recency against the usual gap and the year-over-year change.

    from clientml_worlds import WORLDS, best_achievable_auc, labeled_truth
    summary = WORLDS["drop"](out_dir, n_clients=12_000, seed=0)
    truth = labeled_truth(out_dir)          # client_id, label, p_true of the labeled clients
    best_achievable_auc(truth.label, truth.p_true)
"""

from clientml_worlds import drop, interaction, seasonal
from clientml_worlds.truth import best_achievable_auc, labeled_truth
from clientml_worlds.world import MAX_CLIENTS, MIN_CLIENTS, GenerateWorld, WorldSummary

# name -> generate(out_dir, *, n_clients, seed) -> WorldSummary
WORLDS: dict[str, GenerateWorld] = {
    "drop": drop.generate,
    "interaction": interaction.generate,
    "seasonal": seasonal.generate,
}

__all__ = [
    "MAX_CLIENTS",
    "MIN_CLIENTS",
    "WORLDS",
    "GenerateWorld",
    "WorldSummary",
    "best_achievable_auc",
    "labeled_truth",
]
