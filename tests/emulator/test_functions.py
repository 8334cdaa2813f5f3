"""Lambda Invoke in the emulator runs the deployed zip for real (emulator/functions.py): real
processes under AWS's Runtime Interface Client, with Lambda's environment, warm re-use,
timeouts, error shapes and invocation types."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.emulator.lambda_zips import REGION, client, deploy, invoke

REPORTER = """
import os, sys
import boto3
COUNT = 0

def handler(event, context):
    global COUNT
    COUNT += 1
    try:
        import yaml  # in the emulator's environment, not in this zip nor in Lambda's runtime
        found_yaml = True
    except ImportError:
        found_yaml = False
    names = ("GREETING", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_REGION",
             "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "LAMBDA_TASK_ROOT", "_HANDLER", "AWS_EXECUTION_ENV")
    return {"event": event, "pid": os.getpid(), "count": COUNT, "yaml": found_yaml,
            "environment": {name: os.environ.get(name) for name in names},
            "function_name": context.function_name, "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis()}
"""


def test_invoke_runs_the_zip_with_the_functions_environment_and_only_the_runtimes_packages(emulator: str) -> None:
    deploy(emulator, "reporter", {"app.py": REPORTER}, Timeout=7, Environment={"Variables": {"GREETING": "hello"}})
    response, result = invoke(emulator, "reporter", {"patient": "p-1"})
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert result["event"] == {"patient": "p-1"}
    assert result["environment"] == {
        "GREETING": "hello",
        "AWS_LAMBDA_FUNCTION_NAME": "reporter",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": None,  # its AWS calls go to AWS's host names, through the emulator's proxy
        "LAMBDA_TASK_ROOT": result["environment"]["LAMBDA_TASK_ROOT"],
        "_HANDLER": "app.handler",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14",
    }
    assert result["function_name"] == "reporter" and 0 < result["remaining_ms"] <= 7000
    assert result["yaml"] is False  # the emulator's own packages are not on the function's path


def test_one_warm_process_per_function_revision(emulator: str) -> None:
    deploy(emulator, "warm", {"app.py": REPORTER})
    first = [invoke(emulator, "warm")[1] for _ in range(3)]
    assert len({r["pid"] for r in first}) == 1 and [r["count"] for r in first] == [1, 2, 3]
    assert len({r["request_id"] for r in first}) == 3
    client(emulator, "lambda").update_function_configuration(
        FunctionName="warm", Environment={"Variables": {"GREETING": "changed"}}
    )
    _, after = invoke(emulator, "warm")
    assert after["pid"] != first[0]["pid"] and after["count"] == 1
    assert after["environment"]["GREETING"] == "changed"
    with pytest.raises(ProcessLookupError):  # the old revision's process was stopped
        os.kill(first[0]["pid"], 0)


def test_the_functions_code_reaches_the_emulator(emulator: str) -> None:
    code = """
    import boto3
    def handler(event, context):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=event["bucket"], CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.put_object(Bucket=event["bucket"], Key="made-by", Body=context.function_name.encode())
        return "ok"
    """
    deploy(emulator, "writer", {"app.py": code}, Timeout=10)
    assert invoke(emulator, "writer", {"bucket": "from-lambda"})[1] == "ok"
    body = client(emulator, "s3").get_object(Bucket="from-lambda", Key="made-by")["Body"].read()
    assert body == b"writer"


def test_an_unhandled_exception_has_lambdas_error_shape(emulator: str) -> None:
    code = """
    class ConsumerMissing(Exception):
        pass

    def handler(event, context):
        raise ConsumerMissing(f"no consumer {event['name']}")
    """
    deploy(emulator, "raiser", {"app.py": code})
    response, payload = invoke(emulator, "raiser", {"name": "notify"})
    assert response["StatusCode"] == 200 and response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "ConsumerMissing" and payload["errorMessage"] == "no consumer notify"
    assert any("raise ConsumerMissing" in line for line in payload["stackTrace"])


def test_a_dependency_missing_from_the_zip_fails_at_init_as_on_aws(emulator: str) -> None:
    deploy(emulator, "needs-psycopg", {"app.py": "import psycopg\n\ndef handler(event, context):\n    return 1\n"})
    response, payload = invoke(emulator, "needs-psycopg")
    assert response["FunctionError"] == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert payload["errorMessage"] == "Unable to import module 'app': No module named 'psycopg'"
    vendored = {"app.py": "import helper\n\ndef handler(event, context):\n    return helper.VALUE\n",
                "helper/__init__.py": "VALUE = 'from the zip'\n"}  # fmt: skip
    deploy(emulator, "vendored", vendored)
    assert invoke(emulator, "vendored")[1] == "from the zip"


@pytest.mark.slow
def test_a_timeout_kills_the_process_and_answers_as_lambda(emulator: str) -> None:
    code = """
    import os, time
    def handler(event, context):
        if event.get("sleep"):
            time.sleep(event["sleep"])
        return os.getpid()
    """
    deploy(emulator, "sleeper", {"app.py": code}, Timeout=1)
    pid = invoke(emulator, "sleeper")[1]
    started = time.monotonic()
    response, payload = invoke(emulator, "sleeper", {"sleep": 30})
    assert time.monotonic() - started < 10
    assert response["FunctionError"] == "Unhandled" and payload["errorType"] == "Sandbox.Timedout"
    assert payload["errorMessage"].endswith("Error: Task timed out after 1.00 seconds")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert invoke(emulator, "sleeper")[1] not in (None, pid)  # a new environment answers the next


def test_a_runtime_that_exits_answers_runtime_exit_error(emulator: str) -> None:
    deploy(emulator, "quitter", {"app.py": "import os\n\ndef handler(event, context):\n    os._exit(3)\n"})
    response, payload = invoke(emulator, "quitter")
    assert response["FunctionError"] == "Unhandled" and payload["errorType"] == "Runtime.ExitError"
    assert payload["errorMessage"].endswith("Runtime exited with error: exit status 3")


def test_an_event_invocation_answers_202_and_runs_in_the_background(emulator: str) -> None:
    code = """
    import time, boto3
    def handler(event, context):
        time.sleep(1)
        boto3.client("s3").put_object(Bucket="events", Key="done", Body=b"yes")
    """
    client(emulator, "s3").create_bucket(Bucket="events", CreateBucketConfiguration={"LocationConstraint": REGION})
    deploy(emulator, "background", {"app.py": code}, Timeout=10)
    response, payload = invoke(emulator, "background", InvocationType="Event")
    assert response["StatusCode"] == 202 and payload is None
    s3 = client(emulator, "s3")
    assert s3.list_objects_v2(Bucket="events").get("KeyCount") == 0  # not waited for
    deadline = time.monotonic() + 15
    while s3.list_objects_v2(Bucket="events").get("KeyCount") == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert s3.get_object(Bucket="events", Key="done")["Body"].read() == b"yes"


def test_the_functions_output_goes_to_its_log_group(emulator: str) -> None:
    code = """
    def handler(event, context):
        print("treated", event["patient"])
    """
    deploy(emulator, "printer", {"app.py": code})
    invoke(emulator, "printer", {"patient": "p-7"})
    logs = client(emulator, "logs")
    deadline, messages = time.monotonic() + 5, []
    while not any("treated p-7" in m for m in messages) and time.monotonic() < deadline:
        events = logs.filter_log_events(logGroupName="/aws/lambda/printer").get("events", [])
        messages = [event["message"] for event in events]
        time.sleep(0.05)
    assert any("treated p-7" in m for m in messages)


STOPS_WITH_THE_EMULATOR = """
import json, sys
from emulator import running_emulator
from tests.emulator.lambda_zips import deploy, invoke
with running_emulator() as url:
    deploy(url, "pid", {"app.py": "import os\\n\\ndef handler(event, context):\\n    return os.getpid()\\n"})
    print(invoke(url, "pid")[1], flush=True)
"""


@pytest.mark.slow
def test_the_functions_processes_stop_with_the_emulator() -> None:
    done = subprocess.run([sys.executable, "-c", STOPS_WITH_THE_EMULATOR], capture_output=True, text=True,
                          timeout=120, cwd=os.getcwd())  # fmt: skip
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.strip().splitlines()[-1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def wait_for(emulator: str, execution_arn: str) -> dict[str, object]:
    sfn = client(emulator, "stepfunctions")
    deadline = time.monotonic() + 30
    while (found := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not end"
        time.sleep(0.05)
    return dict(found)


def test_a_state_machine_task_invokes_the_function_and_catches_its_error_by_name(emulator: str) -> None:
    code = """
    class StackBusy(Exception):
        pass

    def handler(event, context):
        if event.get("busy"):
            raise StackBusy(f"{event['stack']} is busy")
        return {"next": event["step"] + 1}
    """
    arn = deploy(emulator, "runner", {"app.py": code})
    definition = {"StartAt": "Step", "States": {
        "Step": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "OutputPath": "$.Payload",
                 "Parameters": {"FunctionName": arn, "Payload.$": "$"}, "End": True,
                 "Catch": [{"ErrorEquals": ["StackBusy"], "ResultPath": "$.error", "Next": "Busy"}]},
        "Busy": {"Type": "Pass", "End": True}}}  # fmt: skip
    role = client(emulator, "iam").get_role(RoleName="runner-role")["Role"]["Arn"]
    sfn = client(emulator, "stepfunctions")
    machine = sfn.create_state_machine(name="tiny", definition=json.dumps(definition), roleArn=role)
    ran = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="ok", input=json.dumps({"step": 1}))
    done = wait_for(emulator, ran["executionArn"])
    assert done["status"] == "SUCCEEDED" and json.loads(str(done["output"])) == {"next": 2}
    busy = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], name="busy",
                               input=json.dumps({"step": 1, "busy": True, "stack": "compute"}))  # fmt: skip
    caught = wait_for(emulator, busy["executionArn"])
    assert caught["status"] == "SUCCEEDED"
    error = json.loads(str(caught["output"]))["error"]
    assert error["Error"] == "StackBusy" and json.loads(error["Cause"])["errorMessage"] == "compute is busy"


def test_functions_still_run_after_an_emulator_started_inside_this_one_stops(emulator: str) -> None:
    """A rehearsal runs its own emulator in the caller's process (sharing moto's state)."""
    from emulator import running_emulator

    deploy(emulator, "outer", {"app.py": "def handler(event, context):\n    return event['n'] + 1\n"})
    with running_emulator() as inner:
        assert invoke(inner, "outer", {"n": 1})[1] == 2
    assert invoke(emulator, "outer", {"n": 2})[1] == 3
