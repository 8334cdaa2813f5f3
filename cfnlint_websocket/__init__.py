"""cfn-lint rules for API Gateway WebSocket APIs: the pitfalls the CareConnect WebSocket project
met, in the tool every team already runs. Use the folder as a rules path:

    cfn-lint --append-rules <path to>/cfnlint_websocket template.yaml

or in `.cfnlintrc`: `append_rules: [<path to>/cfnlint_websocket]`. The rules (E9101-E9112) are
listed with `cfn-lint --list-rules --append-rules <path>`; the README explains each.

Modules: `stage` (logging, name, throttling, access-log format), `invoke` (Lambda invoke
permissions), `manage_connections` (IAM grants of ManageConnections), `template` (Rules section,
size), `service_role` (CloudFormation service role vs. resource providers); `_support` holds what
they share, `limits` the AWS limits as plain data. This file imports nothing, so `limits` can be
used without cfn-lint.
"""
