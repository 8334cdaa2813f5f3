"""What the release engineer sees: a compact line per stage step and per resource event on
stderr, the planned changes as a table, and the summary (text, or JSON for machines)."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO


class Reporter:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def line(self, stage: str, text: str) -> None:
        print(f"[{stage:9s}] {text}", file=self.stream, flush=True)

    def event(self, stage: str, event: dict[str, Any]) -> None:
        reason = event.get("ResourceStatusReason") or ""
        self.line(
            stage,
            f"  {event['ResourceStatus']:<28s} {event['LogicalResourceId']:<28s} "
            f"{event['ResourceType']}" + (f"  ({reason})" if reason else ""),
        )

    def changes(self, stage: str, stack_name: str, changes: list[dict[str, str]]) -> None:
        self.line(stage, f"{stack_name}: {len(changes)} planned change(s)")
        for change in changes:
            replacement = f"  replacement: {change['replacement']}" if change["replacement"] else ""
            self.line(
                stage,
                f"  {change['action']:<8s} {change['resource']:<32s} {change['type']}{replacement}",
            )

    def failure(self, stage: str, message: str, details: list[str]) -> None:
        self.line(stage, f"FAILED: {message}")
        for detail in details:
            self.line(stage, f"  {detail}")

    def summary(self, summary: dict[str, Any], as_json: bool, out: TextIO | None = None) -> None:
        out = out or sys.stdout
        if as_json:
            print(json.dumps(summary, indent=2, sort_keys=True), file=out)
            return
        print(
            f"rollout {summary['result']}: environment {summary['environment']} in {summary['region']}",
            file=out,
        )
        for stage in summary["stages"]:
            print(f"  {stage['stage']:<9s} {stage['action']:<10s} {stage.get('detail', '')}", file=out)
        for key in ("websocket_url", "management_endpoint"):
            if summary.get(key):
                print(f"  {key.replace('_', ' ')}: {summary[key]}", file=out)
        if summary.get("proof"):
            proof = summary["proof"]
            print(
                f"  proven: API {proof['api_id']} with routes {', '.join(proof['routes'])}, "
                f"{proof['integrations']} integrations, stage {proof['stage']}; "
                f"{len(proof['functions'])} functions carry the endpoint, no variable lost; "
                f"handlers on {proof['architecture']}, as built, logging with a retention",
                file=out,
            )
            if isinstance(proof.get("session"), dict):
                seen = proof["session"]
                print(
                    f"  proven: a session through {seen['url']}: connected, authenticated as {seen['user']} "
                    f"(a backend-minted token), {seen['exchanged']} answered, a push by notify received, "
                    f"disconnected (its row {seen['row']} in PostgreSQL)",
                    file=out,
                )
            elif proof.get("session"):
                print(f"  session: {proof['session']}", file=out)
        if summary.get("aws_calls"):
            calls = summary["aws_calls"]
            print(
                f"  AWS calls: {calls['total']} ({sum(calls['mutating'].values())} mutating)",
                file=out,
            )
