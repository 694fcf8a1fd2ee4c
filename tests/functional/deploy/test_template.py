"""infra/template.yaml: lints clean and states the topology of pixsearch/topology.py."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from pixsearch import layout, topology
from pixsearch.config import Settings
from tests.fixtures.tools import missing_tool
from tests.functional.deploy.sources import (
    ROOT,
    STACK_QUEUE_PREFIX,
    TEMPLATE,
    arn_prefixes,
    logical_id,
    resource,
    template,
    tool,
)

STAGE_NAMES = [spec.name for spec in topology.STAGES]
STACK_SETTINGS = Settings(queue_prefix=STACK_QUEUE_PREFIX)

# What each function may do, by bucket prefix (least privilege, issue 8). models/ holds
# weights given as an s3:// URI; search signs presigned GETs of images/ with its own role.
MODELS = "models/"
ACCESS: dict[str, dict[str, set[str]]] = {
    "download": {
        "s3:GetObject": {layout.URLS, layout.IMAGES, layout.MAPS, layout.PARTS},
        "s3:PutObject": {layout.IMAGES, layout.MAPS, layout.PARTS},
        "s3:DeleteObject": {layout.MAPS, layout.PARTS},
    },
    "embed": {
        "s3:GetObject": {layout.IMAGES, layout.EMBEDDINGS, MODELS},
        "s3:PutObject": {layout.EMBEDDINGS},
    },
    "index": {
        "s3:GetObject": {layout.EMBEDDINGS, layout.INDEX, layout.IMAGES},
        "s3:PutObject": {layout.INDEX},
        "s3:DeleteObject": {layout.INDEX},
    },
    "search": {"s3:GetObject": {layout.INDEX, layout.IMAGES, MODELS}},
}


def test_cfn_lint_reports_nothing() -> None:
    """Zero errors and zero warnings: a justified exception would be an ignore_checks entry."""
    findings = lint_file(TEMPLATE)
    assert findings == [], "\n".join(f"{m.rule.id} {m.rule.severity}: {m}" for m in findings)


def test_sam_cli_builds_and_validates_this_template() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]
    for command in ("build", "validate"):
        assert (ROOT / config[command]["parameters"]["template_file"]) == TEMPLATE


def test_sam_validates_offline_without_credentials(tmp_path: Path) -> None:
    sam = tool("sam")
    if sam is None:
        missing_tool("aws-sam-cli is not installed (make tools)")
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = subprocess.run(
        [sam, "validate"],  # template and --lint from samconfig.toml
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{TEMPLATE} is a valid SAM Template\n" in result.stdout


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_queue_and_dead_letter_queue_follow_topology(name: str) -> None:
    spec = topology.stage(name)
    queue = resource(logical_id(name, "Queue"))["Properties"]
    dlq_id = logical_id(name, "DeadLetterQueue")
    dlq = resource(dlq_id)["Properties"]

    assert queue["QueueName"] == {"Fn::Sub": topology.queue_name(STACK_SETTINGS, name)}
    assert dlq["QueueName"] == {"Fn::Sub": topology.dlq_name(STACK_SETTINGS, name)}
    assert queue["VisibilityTimeout"] == spec.visibility_timeout_s
    assert queue["VisibilityTimeout"] >= 6 * spec.function_timeout_s
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": spec.max_receive_count,
    }


def test_functions_see_the_stack_queue_prefix_and_real_settings() -> None:
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["PIXSEARCH_QUEUE_PREFIX"] == {"Fn::Sub": STACK_QUEUE_PREFIX}
    assert variables["PIXSEARCH_BUCKET"] == {"Ref": "BucketName"}
    settings_fields = set(Settings.model_fields)
    for variable in variables:
        if variable.startswith("PIXSEARCH_"):
            field = variable.removeprefix("PIXSEARCH_").lower()
            assert field in settings_fields, f"{variable} names no pixsearch setting"


def test_parameter_defaults_match_settings_and_topology() -> None:
    parameters = template()["Parameters"]
    defaults = Settings()
    assert parameters["Model"]["Default"] == defaults.model
    assert parameters["Pretrained"]["Default"] == defaults.pretrained
    assert parameters["DownloadConcurrency"]["Default"] == defaults.download_concurrency
    assert parameters["DownloadMaxBytes"]["Default"] == defaults.download_max_bytes
    # Lambda passes the function's memory on (AWS_LAMBDA_FUNCTION_MEMORY_SIZE); locally the
    # budget defaults to the same figure.
    assert parameters["DownloadMemorySize"]["Default"] == defaults.download_memory_mb
    assert parameters["SearchKMax"]["Default"] == defaults.search_k_max
    for spec in topology.STAGES:
        assert parameters[f"{spec.name.capitalize()}MemorySize"]["Default"] == spec.memory_mb


def test_index_run_limits_are_the_index_function_size() -> None:
    """An index run sizes its merges to the memory and time the template gives it."""
    parameters = template()["Parameters"]
    function = resource("IndexFunction")["Properties"]
    defaults = Settings()
    assert function["MemorySize"] == {"Ref": "IndexMemorySize"}
    assert parameters["IndexMemorySize"]["Default"] == defaults.index_memory_mb
    assert function["Timeout"] == defaults.index_time_s


def test_the_index_stage_knows_the_search_function_size() -> None:
    """The index stage warns when the segments outgrow the search function's memory."""
    parameters = template()["Parameters"]
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    function = resource("SearchFunction")["Properties"]
    assert function["MemorySize"] == {"Ref": "SearchMemorySize"}
    assert variables["PIXSEARCH_SEARCH_MEMORY_MB"] == {"Ref": "SearchMemorySize"}
    assert parameters["SearchMemorySize"]["Default"] == Settings().search_memory_mb


def _template_notifications() -> set[tuple[str, str, str, str]]:
    bucket = resource("DataBucket")["Properties"]
    found = set()
    for config in bucket["NotificationConfiguration"]["QueueConfigurations"]:
        queue_id, attribute = config["Queue"]["Fn::GetAtt"]
        assert attribute == "Arn"
        rules = {rule["Name"]: rule["Value"] for rule in config["Filter"]["S3Key"]["Rules"]}
        found.add((queue_id, config["Event"], rules.get("prefix", ""), rules.get("suffix", "")))
    return found


def test_bucket_notifications_follow_topology_triggers() -> None:
    expected = {
        (logical_id(spec.name, "Queue"), event, trigger.prefix, trigger.suffix)
        for spec in topology.STAGES
        for trigger in spec.triggers
        for event in trigger.events
    }
    assert _template_notifications() == expected


def test_no_stage_triggers_itself() -> None:
    """A stage's writes never match its own queue's filters (no event loops)."""
    for queue_id, event, prefix, _suffix in _template_notifications():
        stage_name = queue_id.removesuffix("Queue").lower()
        if event.startswith("s3:ObjectCreated"):
            assert prefix not in ACCESS[stage_name]["s3:PutObject"], f"{stage_name} loops"


def test_bucket_is_private_encrypted_versioned_and_waits_for_queue_policy() -> None:
    bucket = resource("DataBucket")
    properties = bucket["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(properties["PublicAccessBlockConfiguration"].values())
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["DependsOn"] == "StageQueuesPolicy"


def test_queue_policy_lets_only_the_data_bucket_send() -> None:
    policy = resource("StageQueuesPolicy")["Properties"]
    assert sorted(item["Ref"] for item in policy["Queues"]) == sorted(
        logical_id(name, "Queue") for name in STAGE_NAMES
    )
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"
    }
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_function_event_source_follows_topology(name: str) -> None:
    spec = topology.stage(name)
    function = resource(logical_id(name, "Function"))["Properties"]
    (source,) = function["Events"].values()
    properties = source["Properties"]

    assert source["Type"] == "SQS"
    assert properties["Queue"] == {"Fn::GetAtt": [logical_id(name, "Queue"), "Arn"]}
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BatchSize"] == spec.batch_size
    assert properties.get("MaximumBatchingWindowInSeconds", 0) == spec.batching_window_s
    assert function["Timeout"] == spec.function_timeout_s
    assert function["MemorySize"] == {"Ref": f"{name.capitalize()}MemorySize"}
    # An event source's MaximumConcurrency is at least 2 (AWS's minimum).
    maximum = max(spec.max_concurrency, 2)
    assert properties["ScalingConfig"] == {"MaximumConcurrency": maximum}
    assert "ReservedConcurrentExecutions" not in function


def _role_statements(function_name: str) -> list[dict[str, Any]]:
    function = resource(logical_id(function_name, "Function"))["Properties"]
    role_id = logical_id(function_name, "Role")
    assert function["Role"] == {"Fn::GetAtt": [role_id, "Arn"]}
    (policy,) = resource(role_id)["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


def _actions(statement: dict[str, Any]) -> set[str]:
    actions = statement["Action"]
    return set(actions if isinstance(actions, list) else [actions])


@pytest.mark.parametrize("name", [*STAGE_NAMES, "search"])
def test_each_function_reaches_only_its_prefixes_and_queue(name: str) -> None:
    granted: dict[str, set[str]] = {}
    for statement in _role_statements(name):
        assert statement["Effect"] == "Allow"
        actions = _actions(statement)
        assert not any(action.endswith("*") for action in actions), actions
        if actions == {"s3:ListBucket"}:
            assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}
        elif all(action.startswith("sqs:") for action in actions):
            assert statement["Resource"] == {"Fn::GetAtt": [logical_id(name, "Queue"), "Arn"]}
        else:
            for action in actions:
                granted.setdefault(action, set()).update(arn_prefixes(statement))
    assert granted == ACCESS[name]


def _routes() -> dict[str, dict]:
    return {
        properties["RouteKey"]: properties
        for item in template()["Resources"].values()
        if item["Type"] == "AWS::ApiGatewayV2::Route"
        for properties in [item["Properties"]]
    }


def test_search_api_routes() -> None:
    assert set(_routes()) == {"POST /search", "POST /search/image", "GET /health"}
    for route in _routes().values():
        assert route["Target"] == {"Fn::Sub": "integrations/${SearchApiIntegration}"}
    integration = resource("SearchApiIntegration")["Properties"]
    assert integration["IntegrationUri"] == {"Fn::GetAtt": ["SearchFunction", "Arn"]}
    assert integration["PayloadFormatVersion"] == "2.0"
    permission = resource("SearchApiInvokesFunction")["Properties"]
    assert permission["FunctionName"] == {"Ref": "SearchFunction"}
    assert "${SearchApi}/*" in permission["SourceArn"]["Fn::Sub"]
    assert "SearchApi" in template()["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]


def _resolve(value: object, parameters: dict[str, object]) -> object:
    """``value`` with Ref/Fn::If/Fn::Equals/Fn::Join/Fn::Not of ``parameters`` worked out."""
    conditions = template()["Conditions"]
    if isinstance(value, list):
        return [_resolve(item, parameters) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or not next(iter(value)).startswith(("Ref", "Condition", "Fn::")):
        return {key: _resolve(item, parameters) for key, item in value.items()}
    ((function, argument),) = value.items()
    if function == "Ref":
        return parameters.get(argument, value)
    if function == "Condition":
        return _resolve(conditions[argument], parameters)
    if function == "Fn::If":
        name, then, otherwise = argument
        chosen = then if _resolve(conditions[name], parameters) else otherwise
        return _resolve(chosen, parameters)
    if function == "Fn::Equals":
        left, right = _resolve(argument, parameters)
        return left == right
    if function == "Fn::Not":
        return not _resolve(argument[0], parameters)
    if function == "Fn::Join":
        separator, items = argument
        return separator.join(_resolve(items, parameters))
    return value


def _defaults(**overrides: object) -> dict[str, object]:
    parameters = {
        name: (
            []
            if spec["Type"] == "CommaDelimitedList" and spec.get("Default") == ""
            else spec.get("Default")
        )
        for name, spec in template()["Parameters"].items()
    }
    return {**parameters, **overrides}


@pytest.mark.parametrize(
    ("auth", "expected"), [("iam", "AWS_IAM"), ("jwt", "JWT"), ("none", "NONE")]
)
def test_every_route_needs_the_authorization_the_parameter_names(auth: str, expected: str):
    parameters = _defaults(ApiAuth=auth)
    for route in _routes().values():
        assert _resolve(route["AuthorizationType"], parameters) == expected
        authorizer = _resolve(route["AuthorizerId"], parameters)
        if auth == "jwt":
            assert authorizer == {"Ref": "SearchApiJwtAuthorizer"}
        else:
            assert authorizer == {"Ref": "AWS::NoValue"}


def test_the_deployed_api_is_closed_by_default() -> None:
    parameters = template()["Parameters"]
    assert parameters["ApiAuth"]["Default"] == "iam"
    assert parameters["ApiAuth"]["AllowedValues"] == ["iam", "jwt", "none"]
    for route in _routes().values():
        assert _resolve(route["AuthorizationType"], _defaults()) == "AWS_IAM"
    authorizer = resource("SearchApiJwtAuthorizer")
    assert authorizer["Condition"] == "UseJwtAuth"
    assert authorizer["Properties"]["JwtConfiguration"] == {
        "Issuer": {"Ref": "JwtIssuer"},
        "Audience": {"Ref": "JwtAudience"},
    }
    assert "JwtNeedsIssuerAndAudience" in template()["Rules"]


def test_stage_throttles_and_cors_names_no_origin_by_default() -> None:
    stage = resource("SearchApiStage")["Properties"]
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
    }
    cors = resource("SearchApi")["Properties"]["CorsConfiguration"]
    assert _resolve(cors, _defaults()) == {"Ref": "AWS::NoValue"}
    origins = ["https://search.example.org"]
    allowed = _resolve(cors, _defaults(CorsAllowedOrigins=origins))
    assert allowed["AllowOrigins"] == origins
    assert "*" not in json.dumps(cors)


@pytest.mark.parametrize("name", [*STAGE_NAMES, "search"])
def test_function_images_build_from_existing_dockerfiles(name: str) -> None:
    function = resource(logical_id(name, "Function"))
    assert function["Properties"]["PackageType"] == "Image"
    metadata = function["Metadata"]
    context = (TEMPLATE.parent / metadata["DockerContext"]).resolve()
    assert context == ROOT
    assert (context / metadata["Dockerfile"]).is_file()
    assert metadata["Dockerfile"] == f"functions/{name}/Dockerfile"


@pytest.mark.parametrize("name", ["embed", "search"])
def test_baked_model_matches_the_model_parameters(name: str) -> None:
    build_args = resource(logical_id(name, "Function"))["Metadata"]["DockerBuildArgs"]
    parameters = template()["Parameters"]
    assert build_args == {
        "MODEL": parameters["Model"]["Default"],
        "PRETRAINED": parameters["Pretrained"]["Default"],
    }
