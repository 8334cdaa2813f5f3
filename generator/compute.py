"""The `compute` template: the handler functions, their log groups and their execution role.

The original design left these to a compute module that was never written. Functions are named
`${NamePrefix}-websocket-<route>`, run the Python handlers in `handlers/` from a zip in S3, and
reach PostgreSQL by one of three methods (a URL, a Secrets Manager secret, or RDS IAM auth).
The role is least privilege: its own log groups, and the one secret or DB user given. The
management-API grant is attached later by the websocket template, scoped to the API it creates.
"""

from __future__ import annotations

from awacs.aws import Allow, PolicyDocument, Statement, StringEquals, StringLike
from awacs.aws import Condition as PolicyCondition
from awacs.awslambda import InvokeFunction
from awacs.kms import Decrypt as KmsDecrypt
from awacs.logs import CreateLogStream, PutLogEvents
from awacs.rds_db import connect as RdsDbConnect
from awacs.secretsmanager import GetSecretValue
from troposphere import (
    And,
    Condition,
    Equals,
    GetAtt,
    If,
    Join,
    Not,
    Or,
    Parameter,
    Ref,
    Sub,
    Template,
)
from troposphere.awslambda import Alias, Code, Environment, Function, LoggingConfig, Permission, VPCConfig
from troposphere.events import Rule, Target
from troposphere.iam import ManagedPolicy, Policy, Role

from generator import account_role, versions
from generator.common import (
    KMS_KEY_ARN_PATTERN,
    add_log_parameters,
    add_name_prefix,
    assume_role_policy,
    checkov_skips,
    deployed_by_template_url,
    finish,
    log_group,
    new_template,
    tags,
)
from generator.connections import add_budget, add_connection_parameters, connection_environment, reserved_concurrency
from generator.model import (
    ENDPOINT_VARIABLE,
    HANDLER_FUNCTIONS,
    HANDLERS_ROLE_NAME,
    LAMBDA_RUNTIME,
    MIGRATE_ROLE_NAME,
    HandlerFunction,
)
from generator.monitoring import add_compute_parameters, compute_monitoring, version_alarms
from generator.names import Names
from generator.parameters import ParameterSet

DATABASE_AUTH_METHODS = ("url", "secret", "iam")
TIMEOUT_PARAMETERS = {
    "Cleanup": "CleanupTimeout",
    "Notify": "NotifyTimeout",
    "Migrate": "MigrateTimeout",
}  # routes: Timeout
MIGRATE = "Migrate"  # the release step: its own role and database identity (the table's owner)
MIGRATE_TIMEOUT_LIMIT = 100  # under the runner's own timeout (generator.statemachine) and the clients' read timeout
ENDPOINT_PATTERN = r"^$|^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9_-]+)?$"
SECRET_ARN_PATTERN = r"^$|^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$"
VPC_ACCESS_POLICY = "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaENIManagementAccess"

NOT_APPLICABLE = (
    (
        "CKV_AWS_116",
        "API Gateway invokes the route handlers synchronously (no event to dead-letter). EventBridge invokes "
        "the cleanup asynchronously: Lambda retries a failed run twice, then drops the event; the cleanup-dropped "
        "alarm (AsyncEventsDropped) reports it and the next scheduled run redoes the same idempotent work, so a "
        "queue would hold events nobody replays.",
    ),
)


def _parameters(params: ParameterSet) -> None:
    add_name_prefix(params, "Prefix of every name (cc gives the original cc-websocket-* functions).")
    add_compute_parameters(params)
    code = "Code"
    params.add(
        code,
        "CodeS3Bucket",
        "Code bucket",
        Type="String",
        AllowedPattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        Description="S3 bucket holding the handlers zip (the rollout's artifacts bucket).",
        ConstraintDescription="an S3 bucket name",
    )
    params.add(
        code,
        "CodeS3Key",
        "Code key",
        Type="String",
        AllowedPattern=r"^[A-Za-z0-9!_.*'()/-]+\.zip$",
        MaxLength=1024,
        Description="S3 key of the handlers zip; it carries the content hash, so new code is a new key.",
        ConstraintDescription="an S3 key ending in .zip",
    )
    runtime = "Runtime"
    params.add(
        runtime,
        "Architecture",
        "Architecture",
        Type="String",
        Default="arm64",
        AllowedValues=["arm64", "x86_64"],
        Description="Processor architecture; the zip must be built for the same one.",
    )
    params.add(
        runtime,
        "MemorySize",
        "Memory (MB)",
        Type="Number",
        Default=256,
        MinValue=128,
        MaxValue=10240,
        Description="Memory of each handler function (CPU scales with it).",
    )
    params.add(
        runtime,
        "Timeout",
        "Timeout (s)",
        Type="Number",
        Default=29,
        MinValue=1,
        MaxValue=29,
        Description="Timeout of each route handler; API Gateway stops waiting after 29 s.",
    )
    params.add(
        runtime,
        "ManagementEndpoint",
        "Management API endpoint",
        Type="String",
        Default="",
        AllowedPattern=ENDPOINT_PATTERN,
        MaxLength=256,
        Description=f"{ENDPOINT_VARIABLE}: https://<api>.execute-api.<region>.<suffix>/<stage>. "
        "Empty until the websocket stack exists; the rollout fills it.",
        ConstraintDescription="empty, or an https:// URL with an optional stage path",
    )
    params.add(
        runtime,
        "ConnectionTtlMinutes",
        "Connection TTL (minutes)",
        Type="Number",
        Default=120,
        MinValue=1,
        MaxValue=120,
        Description="How long a connection row stays valid; API Gateway closes every connection after 2 hours.",
    )
    params.add(
        runtime,
        "CleanupTimeout",
        "Cleanup timeout (s)",
        Type="Number",
        Default=60,
        MinValue=1,
        MaxValue=900,
        Description="Timeout of the scheduled cleanup function.",
    )
    params.add(
        runtime,
        "NotifyTimeout",
        "Notify timeout (s)",
        Type="Number",
        Default=60,
        MinValue=1,
        MaxValue=900,
        Description="Timeout of the notify function (the backend's push path; a push to many "
        "connections takes longer than one reply).",
    )
    params.add(
        runtime,
        "MigrateTimeout",
        "Migrate timeout (s)",
        Type="Number",
        Default=90,
        MinValue=10,
        MaxValue=MIGRATE_TIMEOUT_LIMIT,
        Description="Timeout of the migrate function (the rollout's schema step; it gives up on a "
        f"lock after lockTimeoutMs, 5 s by default). At most {MIGRATE_TIMEOUT_LIMIT} s: the rollout waits for its "
        "answer within one runner invocation and one read of the Invoke reply.",
    )
    params.add(
        runtime,
        "CleanupSchedule",
        "Cleanup schedule",
        Type="String",
        Default="rate(1 hour)",
        AllowedPattern=r"^(rate|cron)\(.+\)$",
        Description="EventBridge schedule of the cleanup (expired connections, inactive rows older than 7 days).",
        ConstraintDescription="an EventBridge rate(...) or cron(...) expression",
    )
    _database_parameters(params)
    add_budget(params)
    add_connection_parameters(params)
    _migration_parameters(params)
    _jwt_parameters(params)
    network = "Network (optional)"
    params.add(
        network,
        "SubnetIds",
        "Subnet ids",
        Type="CommaDelimitedList",
        Default="",
        AllowedPattern=r"^$|^subnet-[0-9a-f]+$",
        Description="Subnets to place the functions in (e.g. beside RDS). Empty: no VPC. In a "
        "VPC they reach the public management API only through a NAT gateway (an execute-api "
        "interface endpoint serves private APIs only).",
        ConstraintDescription="subnet ids, comma separated",
    )
    params.add(
        network,
        "SecurityGroupIds",
        "Security group ids",
        Type="CommaDelimitedList",
        Default="",
        AllowedPattern=r"^$|^sg-[0-9a-f]+$",
        Description="Security groups of the functions when SubnetIds is set.",
        ConstraintDescription="security group ids, comma separated",
    )
    params.add(
        runtime,
        "EnvironmentKmsKeyArn",
        "Environment KMS key ARN",
        Type="String",
        Default="",
        AllowedPattern=KMS_KEY_ARN_PATTERN,
        Description="Customer managed KMS key for the functions' environment variables "
        "(worth it with DatabaseAuth=url). Empty: Lambda's AWS managed key.",
        ConstraintDescription="empty, or a KMS key ARN",
    )
    add_log_parameters(params, "Logs", "Function log")


def _database_parameters(params: ParameterSet) -> None:
    db = "Database"
    params.add(
        db,
        "DatabaseAuth",
        "Database authentication",
        Type="String",
        Default="url",
        AllowedValues=list(DATABASE_AUTH_METHODS),
        Description="url: DatabaseUrl (as the original design). secret: a Secrets Manager "
        "secret with host, port, dbname, username, password. iam: RDS IAM authentication as "
        "DatabaseUser.",
    )
    params.add(
        db,
        "DatabaseUrl",
        "Database URL (url)",
        Type="String",
        Default="",
        NoEcho=True,
        MaxLength=1024,
        AllowedPattern=r"^$|^(jdbc:)?postgres(ql)?://.+$",
        Description="postgresql:// or jdbc:postgresql:// URL. Lands in the functions' "
        "environment: prefer secret or iam.",
        ConstraintDescription="empty, or a postgresql:// or jdbc:postgresql:// URL",
    )
    params.add(
        db,
        "DatabaseSecretArn",
        "Database secret ARN (secret)",
        Type="String",
        Default="",
        AllowedPattern=SECRET_ARN_PATTERN,
        MaxLength=256,
        Description="Secrets Manager secret the functions may read (only this one).",
        ConstraintDescription="empty, or a Secrets Manager secret ARN",
    )
    params.add(
        db,
        "DatabaseHost",
        "Database host (iam)",
        Type="String",
        Default="",
        AllowedPattern=r"^$|^[A-Za-z0-9.-]{1,253}$",
        MaxLength=253,
        Description="RDS endpoint (or RDS Proxy endpoint) host name for IAM authentication.",
        ConstraintDescription="empty, or a host name",
    )
    params.add(
        db,
        "DatabasePort",
        "Database port (iam)",
        Type="Number",
        Default=5432,
        MinValue=1,
        MaxValue=65535,
        Description="PostgreSQL port for IAM authentication.",
    )
    params.add(
        db,
        "DatabaseName",
        "Database name (iam)",
        Type="String",
        Default="careconnect",
        AllowedPattern=r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$",
        MaxLength=63,
        Description="Database holding the websocket_connections table (iam method).",
        ConstraintDescription="a PostgreSQL database name",
    )
    params.add(
        db,
        "DatabaseUser",
        "Database user (iam)",
        Type="String",
        Default="",
        AllowedPattern=r"^$|^[A-Za-z_][A-Za-z0-9_$]{0,62}$",
        MaxLength=63,
        Description="Database user granted rds_iam; the role may connect as this user only.",
        ConstraintDescription="empty, or a PostgreSQL user name",
    )
    params.add(
        db,
        "DatabaseResourceId",
        "DB resource id (iam)",
        Type="String",
        Default="",
        AllowedPattern=r"^$|^(db|cluster)-[A-Z0-9]+$|^prx-[A-Za-z0-9]+$",
        Description="DbiResourceId (db-...), cluster resource id (cluster-...) or, through RDS Proxy, the "
        "proxy's resource id (prx-..., its ARN's last part) for the rds-db:connect grant.",
        ConstraintDescription="empty, or db-XXXX / cluster-XXXX / prx-XXXX",
    )
    params.add(
        db,
        "DatabaseSslMode",
        "TLS mode",
        Type="String",
        Default="require",
        AllowedValues=["require", "verify-full", "prefer", "disable"],
        Description="libpq sslmode for the secret and iam methods (iam needs TLS).",
    )


def _migration_parameters(params: ParameterSet) -> None:
    """Who the migrate function connects as: the table's owner (the handlers hold DML only).
    Each one empty: the handlers' own setting for the method."""
    group = "Database migration (the owner)"
    params.add(
        group,
        "MigrationDatabaseUrl",
        "Owner's URL (url)",
        Type="String",
        Default="",
        NoEcho=True,
        MaxLength=1024,
        AllowedPattern=r"^$|^(jdbc:)?postgres(ql)?://.+$",
        Description="postgresql:// URL of the table's owner, for the migrate function only.",
        ConstraintDescription="empty, or a postgresql:// or jdbc:postgresql:// URL",
    )
    params.add(
        group,
        "MigrationDatabaseSecretArn",
        "Owner's secret ARN (secret)",
        Type="String",
        Default="",
        AllowedPattern=SECRET_ARN_PATTERN,
        MaxLength=256,
        Description="Secrets Manager secret of the table's owner; only the migrate function reads it.",
        ConstraintDescription="empty, or a Secrets Manager secret ARN",
    )
    params.add(
        group,
        "MigrationDatabaseUser",
        "Owner's user (iam)",
        Type="String",
        Default="",
        AllowedPattern=r"^$|^[A-Za-z_][A-Za-z0-9_$]{0,62}$",
        MaxLength=63,
        Description="Database user (granted rds_iam) owning the table; only the migrate function connects as it.",
        ConstraintDescription="empty, or a PostgreSQL user name",
    )


def _jwt_parameters(params: ParameterSet) -> None:
    auth = "Client authentication (JWT)"
    params.add(
        auth,
        "JwtSecretArn",
        "HS256 key secret ARN",
        Type="String",
        Default="",
        AllowedPattern=SECRET_ARN_PATTERN,
        MaxLength=256,
        Description="Secrets Manager secret holding the backend's security.jwt.secret (the base64 "
        "text; the key is its decoded bytes). Empty: use JwtPublicKey.",
        ConstraintDescription="empty, or a Secrets Manager secret ARN",
    )
    params.add(
        auth,
        "JwtPublicKey",
        "RS256 public key (PEM)",
        Type="String",
        Default="",
        MaxLength=1024,
        AllowedPattern=r"^$|^-----BEGIN PUBLIC KEY-----[A-Za-z0-9+/=\s\\n]+-----END PUBLIC KEY-----(\s|\\n)*$",
        Description="PEM public key for RS256 tokens (newlines may be written as \\n). Empty: use JwtSecretArn.",
        ConstraintDescription="empty, or a PEM public key",
    )
    params.add(
        auth,
        "JwtIssuer",
        "Required issuer",
        Type="String",
        Default="careconnect",
        MaxLength=128,
        AllowedPattern=r"^[^\s]*$",
        Description="Tokens must carry this iss claim (the backend's JwtTokenProvider issues "
        "careconnect; empty means careconnect too).",
    )
    params.add(
        auth,
        "JwtAudience",
        "Required audience",
        Type="String",
        Default="",
        MaxLength=128,
        AllowedPattern=r"^[^\s]*$",
        Description="If set, tokens must carry this aud claim.",
    )


def _conditions_and_rules(template: Template) -> None:
    p = template.parameters
    for method in DATABASE_AUTH_METHODS:
        template.add_condition(f"DatabaseAuthIs{method.capitalize()}", Equals(Ref(p["DatabaseAuth"]), method))
    template.add_condition("EnvironmentKmsKeyGiven", Not(Equals(Ref(p["EnvironmentKmsKeyArn"]), "")))
    template.add_condition("InVpc", Not(Equals(Join("", Ref(p["SubnetIds"])), "")))
    # Rules stop a create or update before anything changes when a method lacks its inputs.
    required = {
        "url": [("DatabaseUrl", "DatabaseAuth=url needs DatabaseUrl")],
        "secret": [("DatabaseSecretArn", "DatabaseAuth=secret needs DatabaseSecretArn")],
        "iam": [
            (name, f"DatabaseAuth=iam needs {name}") for name in ("DatabaseHost", "DatabaseUser", "DatabaseResourceId")
        ],
    }
    for method, needs in required.items():
        template.add_rule(
            f"DatabaseAuth{method.capitalize()}Inputs",
            {
                "RuleCondition": Equals(Ref(p["DatabaseAuth"]), method),
                "Assertions": [
                    {"Assert": Not(Equals(Ref(p[name]), "")), "AssertDescription": message} for name, message in needs
                ],
            },
        )
    # Also true only with an ARN given: cfn-lint then never checks the empty default as an ARN.
    template.add_condition(
        "ReadsSecret",
        And(Condition("DatabaseAuthIsSecret"), Not(Equals(Ref(p["DatabaseSecretArn"]), ""))),
    )
    template.add_condition("ReadsJwtSecret", Not(Equals(Ref(p["JwtSecretArn"]), "")))
    for name in ("MigrationDatabaseUrl", "MigrationDatabaseSecretArn", "MigrationDatabaseUser"):
        template.add_condition(f"{name}Given", Not(Equals(Ref(p[name]), "")))
    template.add_condition(
        "MigrationReadsSecret",
        And(
            Condition("DatabaseAuthIsSecret"),
            Or(Condition("MigrationDatabaseSecretArnGiven"), Not(Equals(Ref(p["DatabaseSecretArn"]), ""))),
        ),
    )
    template.add_rule(
        "OneJwtKey",
        {
            "Assertions": [
                {
                    "Assert": Not(
                        And(
                            Not(Equals(Ref(p["JwtSecretArn"]), "")),
                            Not(Equals(Ref(p["JwtPublicKey"]), "")),
                        )
                    ),
                    "AssertDescription": "set JwtSecretArn or JwtPublicKey, not both",
                }
            ]
        },
    )
    # Rules accept only Fn::And/Contains/EachMemberEquals/EachMemberIn/Equals/Not/Or/RefAll/
    # ValueOf/ValueOfAll and Ref (no Fn::Join): an empty list parameter is [""].
    template.add_rule(
        "VpcNeedsSecurityGroups",
        {
            "RuleCondition": Not(_all_empty(p["SubnetIds"])),
            "Assertions": [
                {
                    "Assert": Not(_all_empty(p["SecurityGroupIds"])),
                    "AssertDescription": "SubnetIds needs SecurityGroupIds",
                }
            ],
        },
    )


def _all_empty(list_parameter: Parameter) -> dict[str, object]:
    return {"Fn::EachMemberEquals": [Ref(list_parameter), ""]}


def _when(method: str, value: object) -> If:
    return If(f"DatabaseAuthIs{method.capitalize()}", value, Ref("AWS::NoValue"))


def _secret_arns(parameter: Parameter, fallback: Parameter | None = None) -> list[object]:
    """The secret's ARN as given and its `-??????` form; with a fallback, the fallback's when
    `parameter` is empty (condition `<parameter>Given`)."""
    own: list[object] = [Ref(parameter), Sub(f"${{{parameter.title}}}-??????")]
    if fallback is None:
        return own
    return [
        If(f"{parameter.title}Given", mine, theirs) for mine, theirs in zip(own, _secret_arns(fallback), strict=True)
    ]


def _secret_statements(arns: list[object]) -> list[Statement]:
    """Read one secret, given by full or partial ARN, and decrypt it under any key.

    A partial ARN (no `-XXXXXX` suffix Secrets Manager appends) matches no secret by itself:
    the `-??????` form matches the real one. A secret under a customer managed key needs
    kms:Decrypt on that key: granted on any key of the account, but only through Secrets Manager
    and only for this secret (its ARN is the encryption context Secrets Manager sends)."""
    return [
        Statement(Effect=Allow, Action=[GetSecretValue], Resource=arns),
        Statement(
            Effect=Allow,
            Action=[KmsDecrypt],
            Resource=[Sub("arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*")],
            Condition=PolicyCondition(
                [
                    StringEquals("kms:ViaService", Sub("secretsmanager.${AWS::Region}.${AWS::URLSuffix}")),
                    StringLike("kms:EncryptionContext:SecretARN", arns),
                ]
            ),
        ),
    ]


# The migrate function's owner identity, per method; each empty: the handlers' own setting.
MIGRATION_OWNER = (
    ("url", "DATABASE_URL", "MigrationDatabaseUrl"),
    ("secret", "DATABASE_SECRET_ARN", "MigrationDatabaseSecretArn"),
    ("iam", "DATABASE_USER", "MigrationDatabaseUser"),
)


def _environment(template: Template, function: HandlerFunction) -> Environment:
    """What the handlers read: see handlers/settings.py (and handlers/migrate.py) for the names.
    Every function gets the same variables (the rollout checks none is lost); the migrate
    function also gets the owner's (its role, not the handlers', may use them)."""
    p = template.parameters
    variables: dict[str, object] = {
        ENDPOINT_VARIABLE: Ref(p["ManagementEndpoint"]),
        "CONNECTION_TTL_MINUTES": Ref(p["ConnectionTtlMinutes"]),
        "DATABASE_AUTH": Ref(p["DatabaseAuth"]),
        "DATABASE_URL": _when("url", Ref(p["DatabaseUrl"])),
        "DATABASE_SECRET_ARN": _when("secret", Ref(p["DatabaseSecretArn"])),
        "DATABASE_HOST": _when("iam", Ref(p["DatabaseHost"])),
        "DATABASE_PORT": _when("iam", Ref(p["DatabasePort"])),
        "DATABASE_NAME": _when("iam", Ref(p["DatabaseName"])),
        "DATABASE_USER": _when("iam", Ref(p["DatabaseUser"])),
        "DATABASE_SSLMODE": Ref(p["DatabaseSslMode"]),
        **connection_environment(p),
        "JWT_SECRET_ARN": Ref(p["JwtSecretArn"]),
        "JWT_PUBLIC_KEY": Ref(p["JwtPublicKey"]),
        "JWT_ISSUER": Ref(p["JwtIssuer"]),
        "JWT_AUDIENCE": Ref(p["JwtAudience"]),
    }
    if function.logical == MIGRATE:
        for method, variable, parameter in MIGRATION_OWNER:
            given = If(f"{parameter}Given", Ref(p[parameter]), Ref("AWS::NoValue"))
            variables[f"MIGRATION_{variable}"] = _when(method, given)
    return Environment(Variables=variables)


def _role(template: Template, migrate: bool = False) -> Role:
    """The handlers' role, or the migrate function's (its log group, the owner's secret or
    database user where given, no JWT key): neither can act as the other."""
    p = template.parameters
    functions = [f for f in HANDLER_FUNCTIONS if (f.logical == MIGRATE) == migrate]
    log_arns = [GetAtt(f"{function.logical}LogGroup", "Arn") for function in functions]
    statements = [
        Statement(Effect=Allow, Action=[CreateLogStream, PutLogEvents], Resource=log_arns),
    ]
    user: object = Ref(p["DatabaseUser"])
    if migrate:
        user = If("MigrationDatabaseUserGiven", Ref(p["MigrationDatabaseUser"]), user)
    secret = _secret_statements(
        _secret_arns(p["MigrationDatabaseSecretArn"], p["DatabaseSecretArn"])
        if migrate
        else _secret_arns(p["DatabaseSecretArn"])
    )
    jwt_secret = _secret_statements(_secret_arns(p["JwtSecretArn"]))
    iam_connect = Statement(
        Effect=Allow,
        Action=[RdsDbConnect],
        Resource=[
            Sub(
                "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${DatabaseResourceId}/${User}",
                User=user,
            )
        ],
    )
    reads_secret = "MigrationReadsSecret" if migrate else "ReadsSecret"
    policies = [
        Policy(PolicyName="logs", PolicyDocument=PolicyDocument(Version="2012-10-17", Statement=statements)),
        If(reads_secret, Policy(PolicyName="database-secret", PolicyDocument=_document(*secret)), Ref("AWS::NoValue")),
        If(
            "DatabaseAuthIsIam",
            Policy(PolicyName="database-iam-auth", PolicyDocument=_document(iam_connect)),
            Ref("AWS::NoValue"),
        ),
    ]
    if not migrate:
        jwt_policy = Policy(PolicyName="jwt-secret", PolicyDocument=_document(*jwt_secret))
        policies.insert(2, If("ReadsJwtSecret", jwt_policy, Ref("AWS::NoValue")))
    return template.add_resource(
        Role(
            "MigrateRole" if migrate else "HandlersRole",
            RoleName=Sub(MIGRATE_ROLE_NAME if migrate else HANDLERS_ROLE_NAME),
            Description="Execution role of the CareConnect WebSocket "
            + ("schema migration (the release step)" if migrate else "handlers"),
            AssumeRolePolicyDocument=assume_role_policy("lambda.amazonaws.com"),
            Policies=policies,
            ManagedPolicyArns=If("InVpc", [Sub(VPC_ACCESS_POLICY)], Ref("AWS::NoValue")),
            Tags=tags("compute"),
        )
    )


def _document(*statements: Statement) -> PolicyDocument:
    return PolicyDocument(Version="2012-10-17", Statement=list(statements))


def _function(template: Template, function: HandlerFunction, role: Role) -> Function:
    p = template.parameters
    logs = template.add_resource(
        log_group(template, f"{function.logical}LogGroup", Sub(f"/aws/lambda/{function.function_name}"), "compute")
    )
    return template.add_resource(
        Function(
            f"{function.logical}Function",
            FunctionName=Sub(function.function_name),
            Description=function.description,
            Runtime=LAMBDA_RUNTIME,
            Handler=function.handler,
            Architectures=[Ref(p["Architecture"])],
            MemorySize=Ref(p["MemorySize"]),
            Timeout=Ref(TIMEOUT_PARAMETERS.get(function.logical, "Timeout")),
            ReservedConcurrentExecutions=reserved_concurrency(template, function.logical),
            Role=GetAtt(role, "Arn"),
            Code=Code(S3Bucket=Ref(p["CodeS3Bucket"]), S3Key=Ref(p["CodeS3Key"])),
            Environment=_environment(template, function),
            KmsKeyArn=If("EnvironmentKmsKeyGiven", Ref(p["EnvironmentKmsKeyArn"]), Ref("AWS::NoValue")),
            LoggingConfig=LoggingConfig(LogGroup=Ref(logs)),
            VpcConfig=If(
                "InVpc",
                VPCConfig(SubnetIds=Ref(p["SubnetIds"]), SecurityGroupIds=Ref(p["SecurityGroupIds"])),
                Ref("AWS::NoValue"),
            ),
            Tags=tags("compute"),
            Metadata=checkov_skips(*NOT_APPLICABLE),
        )
    )


def _cleanup_schedule(template: Template, cleanup: Alias) -> Rule:
    """The schedule invokes the cleanup's live alias (the release's version), with its permission there."""
    p = template.parameters
    rule = template.add_resource(
        Rule(
            "CleanupScheduleRule",
            Description="Runs the WebSocket connection cleanup",
            ScheduleExpression=Ref(p["CleanupSchedule"]),
            State="ENABLED",
            Targets=[Target(Arn=Ref(cleanup), Id="cleanup")],
        )
    )
    template.add_resource(
        Permission(
            "CleanupInvokePermission",
            Action="lambda:InvokeFunction",
            FunctionName=Ref(cleanup),
            Principal="events.amazonaws.com",
            SourceArn=GetAtt(rule, "Arn"),
        )
    )
    return rule


def _notify_invoke_policy(template: Template, notify: Alias) -> ManagedPolicy:
    """What the backend's own role attaches to invoke the notify function's live alias, and nothing
    else (the backend invokes `...:function:NAME:live`; an unqualified call is refused)."""
    return template.add_resource(
        ManagedPolicy(
            "NotifyInvokePolicy",
            ManagedPolicyName=Sub(Names().policy("notify-invoke")),
            Description="Lets the CareConnect backend push to connected apps (invoke the notify function)",
            PolicyDocument=_document(Statement(Effect=Allow, Action=[InvokeFunction], Resource=[Ref(notify)])),
        )
    )


def _outputs(
    functions: list[tuple[HandlerFunction, Function]], role: Role, notify_policy: ManagedPolicy
) -> dict[str, tuple[str, object]]:
    outputs: dict[str, tuple[str, object]] = {}
    for function, resource in functions:
        outputs[f"{function.logical}FunctionArn"] = (
            f"ARN of {function.display_name}",
            GetAtt(resource, "Arn"),
        )
        outputs[f"{function.logical}FunctionName"] = (
            f"Name of {function.display_name}",
            Ref(resource),
        )
    outputs["HandlersRoleName"] = ("Execution role name", Ref(role))
    outputs["HandlersRoleArn"] = ("Execution role ARN", GetAtt(role, "Arn"))
    outputs["NotifyInvokePolicyArn"] = (
        "Managed policy the backend's role attaches to invoke the notify function",
        Ref(notify_policy),
    )
    return outputs


def build() -> Template:
    """The whole compute template, as plain troposphere data."""
    template, params = new_template(
        "CareConnect WebSocket compute: the handler Lambda functions, their log "
        "groups and their least-privilege execution role."
    )
    _parameters(params)
    versions.add_parameters(params)
    deployed_by_template_url(template)
    _conditions_and_rules(template)
    versions.add_condition(template)
    logging_role = account_role.add_role(template, params)
    role, migrate_role = _role(template), _role(template, migrate=True)
    functions = [
        (function, _function(template, function, migrate_role if function.logical == MIGRATE else role))
        for function in HANDLER_FUNCTIONS
    ]
    released = {f.logical: versions.version_and_alias(template, f, resource) for f, resource in functions}
    aliases = {logical: alias for logical, (_, alias) in released.items()}
    rule = _cleanup_schedule(template, aliases["Cleanup"])
    notify_policy = _notify_invoke_policy(template, aliases["Notify"])
    # The release step answers its failures to the rollout that invoked it: no alarms to bake on.
    topic = compute_monitoring(template, [f for f in functions if f[0].logical != MIGRATE], TIMEOUT_PARAMETERS, rule)
    version_alarms(template, [(f, r, released[f.logical][0]) for f, r in functions if f.logical != MIGRATE], topic)
    outputs = _outputs(functions, role, notify_policy)
    for function, _ in functions:
        version, alias = released[function.logical]
        outputs[f"{function.logical}AliasArn"] = (f"ARN of {function.display_name}'s live alias", Ref(alias))
        outputs[f"{function.logical}FunctionVersion"] = (
            f"The version of {function.display_name} this release published",
            GetAtt(version, "Version"),
        )
    outputs["AlarmTopicArn"] = ("SNS topic every alarm of the WebSocket stacks notifies", topic)
    outputs[account_role.ARN_OUTPUT] = (
        "The account's API Gateway CloudWatch role this stack created (empty: none)",
        logging_role,
    )
    return finish(template, params, outputs)
