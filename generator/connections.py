"""How the functions hold PostgreSQL connections: how many (the budget), through what (RDS
Proxy) and for how long a statement may run.

Each Lambda execution environment holds one connection until Lambda reclaims it, so a function's
connections follow its concurrency. `DatabaseConnectionBudget` bounds the four functions that
follow traffic, as reserved concurrency split by shares: in a storm Lambda throttles the excess
(API Gateway answers the client, the app backs off and reconnects) instead of PostgreSQL
refusing connections inside every handler. CloudFormation has no arithmetic, so each budget's
split is a row of the `ConnectionBudget` mapping, read with Fn::FindInMap.
"""

from __future__ import annotations

from typing import Any

from troposphere import Equals, FindInMap, If, Not, Ref, Template

from generator.budget import BUDGETS, DEFAULT_BUDGET, FIXED, UNRESERVED, split
from generator.parameters import ParameterSet

PARAMETER = "DatabaseConnectionBudget"
MAPPING = "ConnectionBudget"
CONDITION = "ConnectionBudgetGiven"


def add_budget(params: ParameterSet) -> None:
    """The parameter, the mapping with each budget's split, and the condition on it."""
    budget = params.add(
        "Database",
        PARAMETER,
        "Connection budget",
        Type="String",
        Default=str(DEFAULT_BUDGET),
        AllowedValues=[*(str(b) for b in BUDGETS), UNRESERVED],
        Description="PostgreSQL connections the $default, $connect, notify and $disconnect functions may "
        "hold in total, as their reserved concurrency (shares 4:3:2:1); cleanup and migrate hold 1 each "
        f"beyond it. {UNRESERVED}: no reserved concurrency (connections follow traffic unbounded).",
    )
    params.template.add_mapping(MAPPING, {str(b): split(b) for b in BUDGETS})
    params.template.add_condition(CONDITION, Not(Equals(Ref(budget), UNRESERVED)))


def reserved_concurrency(template: Template, logical: str) -> object:
    """The function's ReservedConcurrentExecutions (AWS::NoValue for an unreserved budget)."""
    if logical in FIXED:
        return FIXED[logical]
    return If(CONDITION, FindInMap(MAPPING, Ref(template.parameters[PARAMETER]), logical), Ref("AWS::NoValue"))


def add_connection_parameters(params: ParameterSet) -> None:
    """The RDS Proxy endpoint for the secret method, and the statement timeout."""
    params.add(
        "Database",
        "DatabaseProxyHost",
        "RDS Proxy endpoint (secret)",
        Type="String",
        Default="",
        AllowedPattern=r"^$|^[A-Za-z0-9.-]{1,253}$",
        MaxLength=253,
        Description="With DatabaseAuth=secret: connect to this RDS Proxy endpoint with the secret's user and "
        "password instead of the secret's host. With iam, give the proxy endpoint as DatabaseHost and its "
        "prx- id as DatabaseResourceId.",
        ConstraintDescription="empty, or a host name",
    )
    params.add(
        "Database",
        "DatabaseStatementTimeoutMs",
        "Statement timeout (ms)",
        Type="Number",
        Default=5000,
        MinValue=0,
        MaxValue=28000,
        Description="statement_timeout sent in each connection's startup options (no SET). 0: none sent, the "
        "role's setting applies (ALTER ROLE ... SET statement_timeout). Below the 29 s API Gateway waits.",
    )


def connection_environment(p: Any) -> dict[str, object]:
    """DATABASE_PROXY_HOST and DATABASE_STATEMENT_TIMEOUT_MS (handlers/settings.py), from `p`,
    the template's parameters."""
    return {
        "DATABASE_PROXY_HOST": If("DatabaseAuthIsSecret", Ref(p["DatabaseProxyHost"]), Ref("AWS::NoValue")),
        "DATABASE_STATEMENT_TIMEOUT_MS": Ref(p["DatabaseStatementTimeoutMs"]),
    }
