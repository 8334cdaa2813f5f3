"""The connection budget's split into reserved concurrency per function, as plain numbers: the
compute template (generator/connections.py) maps it into the template, and the local API
(handlers/local_environments.py) caps its execution environments with it. No troposphere here,
so the local API needs only its own extras.
"""

from __future__ import annotations

UNRESERVED = "unreserved"
# Out of 10: $default answers every frame (authenticate, heartbeats, subscriptions) of every
# client; $connect takes the storm itself, one INSERT per arrival; notify holds its connection
# through a fan-out; $disconnect is one UPDATE, and a throttled one only leaves a row for the
# cleanup or the next 410 to deactivate.
SHARES = {"Default": 4, "Connect": 3, "Notify": 2, "Disconnect": 1}
# Scheduled or release work, not traffic: one at a time is all they need, whatever the budget.
FIXED = {"Cleanup": 1, "Migrate": 1}
# Multiples of 10, so every share is whole; at most 800 (+2 fixed): Lambda keeps 100 of an
# account's default 1,000 concurrent executions unreserved.
BUDGETS = (10, 20, 30, 40, 60, 80, 100, 150, 200, 300, 400, 600, 800)
DEFAULT_BUDGET = 40


def split(budget: int) -> dict[str, int]:
    """Reserved concurrency per traffic function for `budget` connections in total."""
    total = sum(SHARES.values())
    return {function: budget * share // total for function, share in SHARES.items()}
