"""What every stage of the generative story shares: the as-of date and the values of the categorical columns.

The as-of date is fixed (:data:`AS_OF`, never the wall clock). Categorical columns are drawn as codes
(positions in the tuples below) and written as the tuple's text.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

AS_OF = dt.date(2025, 1, 1)
AS_OF_DAY = (AS_OF - dt.date(1970, 1, 1)).days  # AS_OF in days since 1970-01-01
HISTORY_DAYS = 3 * 365  # activity covers this many days before AS_OF
DAYS_PER_YEAR = 365.25

GENDERS = ("F", "M")
REGIONS = ("north", "south", "east", "west", "central", "capital")
SEGMENTS = ("consumer", "small_business", "corporate")
CHANNELS = ("web", "store", "partner", "referral")
CATEGORIES = ("electronics", "home", "grocery", "fashion", "sports", "premium_services")
PREMIUM = CATEGORIES.index("premium_services")
SALES_CHANNELS = ("online", "store", "phone")
# Discounts are a handful of round promotion rates, as on a real till.
DISCOUNTS = ("0", "0.05", "0.1", "0.15", "0.2", "0.25", "0.3", "0.4", "0.5")
DISCOUNT_VALUES = np.array([float(d) for d in DISCOUNTS])
