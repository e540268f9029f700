"""deploy/stack.yaml: cfn-lint, then the security and reliability policies the template must keep."""

import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localmode import idp
from service.domain.identity import ROLES

Resource = dict[str, Any]
OfType = Callable[[str], dict[str, Resource]]
Only = Callable[[str], Resource]

TABLE_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:DescribeTable",
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchGetItem",
}
# The roles route and the password policy's read; sign-up, confirmation and login are unauthenticated APIs.
POOL_ACTIONS = {
    "cognito-idp:AdminAddUserToGroup",
    "cognito-idp:AdminListGroupsForUser",
    "cognito-idp:AdminRemoveUserFromGroup",
    "cognito-idp:DescribeUserPool",
}
INTERNET = {"0.0.0.0/0", "::/0"}
# Actions IAM defines without a resource type, so only "*" names their resource.
WITHOUT_RESOURCE_TYPE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_cfn_lint_reports_nothing(run_tool: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    # Informational findings included: a clean template has none at any level.
    result = run_tool("cfn-lint", "--include-checks", "I", "--", "deploy/stack.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: Any) -> Iterator[dict[str, Any]]:
    """Every IAM statement anywhere under a resource's properties."""
    if isinstance(document, dict):
        if "Statement" in document:
            yield from _as_list(document["Statement"])
        for value in document.values():
            yield from _statements(value)
    elif isinstance(document, list):
        for value in document:
            yield from _statements(value)


def test_no_iam_statement_uses_wildcards(resources: dict[str, Resource]) -> None:
    assert_no_iam_wildcards(resources)


def assert_no_iam_wildcards(resources: dict[str, Resource]) -> None:
    statements = [
        statement
        for body in resources.values()
        if body["Type"].startswith("AWS::IAM::")
        for statement in _statements(body["Properties"])
    ]
    assert statements
    for statement in statements:
        assert "NotAction" not in statement
        assert "NotResource" not in statement
        assert all("*" not in action for action in _as_list(statement["Action"]))
        if set(_as_list(statement["Action"])) <= WITHOUT_RESOURCE_TYPE:
            continue
        assert all(resource != "*" for resource in _as_list(statement.get("Resource", [])))


def test_managed_policies_are_only_aws_execution_policies_on_their_roles(resources_of_type: OfType) -> None:
    # Only where an action cannot be scoped to a resource (ECR login; Lambda's VPC interfaces).
    attached = {
        name: role["Properties"].get("ManagedPolicyArns", [])
        for name, role in resources_of_type("AWS::IAM::Role").items()
    }
    managed = "arn:${AWS::Partition}:iam::aws:policy/service-role/"
    assert {name: arns for name, arns in attached.items() if arns} == {
        "ExecutionRole": [{"Fn::Sub": managed + "AmazonECSTaskExecutionRolePolicy"}],
        "ChangeCaptureRole": [{"Fn::Sub": managed + "AWSLambdaVPCAccessExecutionRole"}],
    }


def test_change_capture_reads_the_table_stream_and_writes_only_roster_rows(
    resources: dict[str, Resource], only_resource: Only
) -> None:
    table = only_resource("AWS::DynamoDB::Table")
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    stream = {"Fn::GetAtt": ["Table", "StreamArn"]}
    role = resources["ChangeCaptureRole"]["Properties"]
    statements = [statement for policy in role["Policies"] for statement in _statements(policy)]
    by_resource: dict[str, set[str]] = {}
    for statement in statements:
        by_resource.setdefault(repr(statement["Resource"]), set()).update(_as_list(statement["Action"]))
    assert by_resource == {
        repr(stream): {
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
        },
        # Rows are recomputed with a Query of a learner's items, stored or deleted.
        repr({"Fn::GetAtt": ["Table", "Arn"]}): {"dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
    }
    mapping = only_resource("AWS::Lambda::EventSourceMapping")
    assert mapping["EventSourceArn"] == stream
    assert mapping["FunctionName"] == {"Ref": "ChangeCaptureFunction"}
    assert mapping["BisectBatchOnFunctionError"] is True


def test_change_capture_runs_the_service_image_against_the_tasks_redis(
    only_resource: Only, container: Resource, container_env: dict[str, Any]
) -> None:
    function = only_resource("AWS::Lambda::Function")
    assert function["PackageType"] == "Image"
    assert function["Code"]["ImageUri"] == container["Image"]
    assert function["ImageConfig"]["Command"] == ["service.changes.lambda_handler.handler"]
    variables = function["Environment"]["Variables"]
    assert variables["STATS_REDIS_URL"] == container_env["STATS_REDIS_URL"]
    assert variables["STATS_DYNAMODB_TABLE"] == container_env["STATS_DYNAMODB_TABLE"]
    assert function["VpcConfig"]["SubnetIds"] == {"Ref": "PrivateSubnetIds"}


def test_task_role_allows_exactly_the_table_and_pool_operations_on_them(
    resources: dict[str, Resource], only_resource: Only
) -> None:
    role_name, _ = only_resource("AWS::ECS::TaskDefinition")["TaskRoleArn"]["Fn::GetAtt"]
    role = resources[role_name]["Properties"]
    assert "ManagedPolicyArns" not in role
    statements = [statement for policy in role["Policies"] for statement in _statements(policy)]
    allowed: dict[tuple[str, str], set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        (resource,) = _as_list(statement["Resource"])
        name, attribute = resource["Fn::GetAtt"]
        allowed.setdefault((resources[name]["Type"], attribute), set()).update(_as_list(statement["Action"]))
    assert allowed == {
        ("AWS::DynamoDB::Table", "Arn"): TABLE_ACTIONS,
        ("AWS::Cognito::UserPool", "Arn"): POOL_ACTIONS,
    }


def test_every_task_seals_cursors_with_the_one_stack_secret(
    resources: dict[str, Resource], only_resource: Only, container: Resource
) -> None:
    assert container["Secrets"] == [{"Name": "STATS_CURSOR_SECRET", "ValueFrom": {"Ref": "CursorSecret"}}]
    assert resources["CursorSecret"]["Type"] == "AWS::SecretsManager::Secret"
    role_name, _ = only_resource("AWS::ECS::TaskDefinition")["ExecutionRoleArn"]["Fn::GetAtt"]
    statements = [
        statement for policy in resources[role_name]["Properties"]["Policies"] for statement in _statements(policy)
    ]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        ("secretsmanager:GetSecretValue", {"Ref": "CursorSecret"})
    ]


def test_user_pool_signs_in_by_email_with_the_local_modes_password_policy(only_resource: Only) -> None:
    pool = only_resource("AWS::Cognito::UserPool")
    assert pool["UsernameAttributes"] == ["email"]
    assert pool["UsernameConfiguration"] == {"CaseSensitive": False}
    assert pool["AutoVerifiedAttributes"] == ["email"]
    policy = dict(pool["Policies"]["PasswordPolicy"])
    policy.pop("TemporaryPasswordValidityDays")
    assert policy == idp.PASSWORD_POLICY
    assert pool["DeletionProtection"] == "ACTIVE"
    assert pool["UserPoolAddOns"] == {"AdvancedSecurityMode": {"Ref": "AdvancedSecurity"}}


def test_user_pool_outlives_the_stack(resources_of_type: OfType) -> None:
    (pool,) = resources_of_type("AWS::Cognito::UserPool").values()
    assert (pool["DeletionPolicy"], pool["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_app_client_is_public_with_password_login_and_refresh_only(only_resource: Only) -> None:
    client = only_resource("AWS::Cognito::UserPoolClient")
    assert client["UserPoolId"] == {"Ref": "UserPool"}
    assert client["GenerateSecret"] is False
    assert set(client["ExplicitAuthFlows"]) == {"ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}
    assert client["PreventUserExistenceErrors"] == "ENABLED"


def test_the_pools_groups_are_the_services_roles(resources_of_type: OfType) -> None:
    groups = resources_of_type("AWS::Cognito::UserPoolGroup").values()
    assert {group["Properties"]["GroupName"] for group in groups} == ROLES
    assert all(group["Properties"]["UserPoolId"] == {"Ref": "UserPool"} for group in groups)


def test_service_verifies_the_pools_tokens_and_trusts_no_header_by_default(
    container_env: dict[str, Any], template: dict[str, Any]
) -> None:
    assert container_env["STATS_COGNITO_USER_POOL_ID"] == {"Ref": "UserPool"}
    assert container_env["STATS_AUTH_CLIENT_ID"] == {"Ref": "UserPoolClient"}
    assert container_env["STATS_TRUST_USER_HEADER"] == {"Ref": "TrustUserHeader"}
    assert template["Parameters"]["TrustUserHeader"]["Default"] == "false"
    assert "STATS_AUTH_ISSUER" not in container_env, "the issuer follows from the pool"


def _group_id(reference: Resource) -> str:
    if "Ref" in reference:
        name: str = reference["Ref"]
        return name
    group, attribute = reference["Fn::GetAtt"]
    assert attribute == "GroupId"
    return str(group)


def _ingress_rules(resources: dict[str, Resource]) -> Iterator[tuple[str, Resource]]:
    """(security group logical id, rule) for inline and standalone ingress rules."""
    for name, body in resources.items():
        if body["Type"] == "AWS::EC2::SecurityGroup":
            for rule in body["Properties"].get("SecurityGroupIngress", []):
                yield name, rule
        elif body["Type"] == "AWS::EC2::SecurityGroupIngress":
            yield _group_id(body["Properties"]["GroupId"]), body["Properties"]


def _source(rule: Resource) -> str:
    if "SourceSecurityGroupId" in rule:
        return _group_id(rule["SourceSecurityGroupId"])
    return str(rule.get("CidrIp") or rule.get("CidrIpv6") or rule.get("SourcePrefixListId"))


def _load_balancer_group(only_resource: Only) -> str:
    (group,) = only_resource("AWS::ElasticLoadBalancingV2::LoadBalancer")["SecurityGroups"]
    return _group_id(group)


def test_only_the_load_balancer_is_reachable_from_the_internet(
    resources: dict[str, Resource], only_resource: Only
) -> None:
    load_balancer_group = _load_balancer_group(only_resource)
    rules = list(_ingress_rules(resources))
    assert {group for group, rule in rules if _source(rule) in INTERNET} == {load_balancer_group}
    open_ports = {(rule["FromPort"], rule["ToPort"]) for group, rule in rules if group == load_balancer_group}
    assert open_ports <= {(80, 80), (443, 443)}


def test_private_groups_admit_only_their_upstreams(resources: dict[str, Resource], only_resource: Only) -> None:
    load_balancer_group = _load_balancer_group(only_resource)
    service = only_resource("AWS::ECS::Service")["NetworkConfiguration"]["AwsvpcConfiguration"]
    (task_group,) = map(_group_id, service["SecurityGroups"])
    # Every cache mode's cache is in this group (test_cache_modes).
    (redis_group,) = map(_group_id, resources["Redis"]["Properties"]["SecurityGroupIds"])
    function = only_resource("AWS::Lambda::Function")["VpcConfig"]
    (change_capture_group,) = map(_group_id, function["SecurityGroupIds"])
    admitted = {
        (group, _source(rule), rule["FromPort"], rule["ToPort"])
        for group, rule in _ingress_rules(resources)
        if group != load_balancer_group
    }
    # Redis admits the tasks and the change-capture function; nothing admits the function.
    assert admitted == {
        (task_group, load_balancer_group, 8080, 8080),
        (redis_group, task_group, 6379, 6379),
        (redis_group, change_capture_group, 6379, 6379),
    }


def test_table_is_on_demand_recoverable_and_protected(
    resources_of_type: OfType,
) -> None:
    ((name, table),) = resources_of_type("AWS::DynamoDB::Table").items()
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["DeletionProtectionEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain"), name
    assert properties["KeySchema"] == [
        {"AttributeName": "userId", "KeyType": "HASH"},
        {"AttributeName": "sessionKey", "KeyType": "RANGE"},
    ]
    assert "GlobalSecondaryIndexes" not in properties
    assert "LocalSecondaryIndexes" not in properties


def test_service_uses_the_stack_table_in_production(container_env: dict[str, Any]) -> None:
    assert container_env["STATS_ENV"] == "production"
    assert container_env["STATS_DYNAMODB_TABLE"] == {"Ref": "Table"}
    assert container_env["AWS_REGION"] == {"Ref": "AWS::Region"}
    assert "STATS_DYNAMODB_ENDPOINT" not in container_env, "production uses AWS's own endpoint"


def test_task_definition_is_fargate_and_read_only(only_resource: Only, container: Resource) -> None:
    task = only_resource("AWS::ECS::TaskDefinition")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["NetworkMode"] == "awsvpc"
    assert container["ReadonlyRootFilesystem"] is True
    assert container["Image"] == {"Fn::Sub": "${Repository.RepositoryUri}:${ImageTag}"}


def test_logs_go_to_a_log_group_with_retention(resources: dict[str, Resource], container: Resource) -> None:
    logging = container["LogConfiguration"]
    assert logging["LogDriver"] == "awslogs"
    group = resources[logging["Options"]["awslogs-group"]["Ref"]]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_service_is_private_behind_the_load_balancer_with_rollback(only_resource: Only) -> None:
    service = only_resource("AWS::ECS::Service")
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert network["Subnets"] == {"Ref": "PrivateSubnetIds"}
    (attachment,) = service["LoadBalancers"]
    assert attachment["ContainerPort"] == 8080
    assert attachment["TargetGroupArn"] == {"Ref": "TargetGroup"}
    assert only_resource("AWS::ElasticLoadBalancingV2::LoadBalancer")["Subnets"] == {"Ref": "PublicSubnetIds"}


def test_registry_scans_and_never_retags(only_resource: Only) -> None:
    repository = only_resource("AWS::ECR::Repository")
    assert repository["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert repository["ImageTagMutability"] == "IMMUTABLE"


def test_cluster_has_container_insights(only_resource: Only) -> None:
    settings = only_resource("AWS::ECS::Cluster")["ClusterSettings"]
    assert {"Name": "containerInsights", "Value": "enabled"} in settings


def test_autoscaling_tracks_cpu_and_request_count(resources_of_type: OfType) -> None:
    policies = resources_of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    metrics = {
        policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]
        for policy in policies
    }
    assert metrics == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}


def test_alarms_watch_errors_and_latency(resources_of_type: OfType) -> None:
    alarms = [alarm["Properties"] for alarm in resources_of_type("AWS::CloudWatch::Alarm").values()]
    watched = {(alarm["MetricName"], alarm.get("ExtendedStatistic") or alarm["Statistic"]) for alarm in alarms}
    assert ("HTTPCode_Target_5XX_Count", "Sum") in watched
    assert ("TargetResponseTime", "p99") in watched


@pytest.mark.parametrize(
    "parameter",
    [
        "VpcId",
        "PublicSubnetIds",
        "PrivateSubnetIds",
        "ImageTag",
        "TaskCpu",
        "TaskMemory",
        "DesiredCount",
        "MinCount",
        "MaxCount",
        "RedisNodeType",
        "LogRetentionDays",
        "TrustUserHeader",
        "AdvancedSecurity",
    ],
)
def test_declares_parameter(template: dict[str, Any], parameter: str) -> None:
    assert parameter in template["Parameters"]


def test_outputs_what_the_deploy_script_reads(template: dict[str, Any]) -> None:
    assert {"ServiceUrl", "RepositoryUri", "TableName", "UserPoolId", "UserPoolClientId"} <= set(template["Outputs"])


def test_metrics_are_not_served_to_the_internet(resources: dict[str, Resource]) -> None:
    # The collector scrapes each task on localhost; through the load balancer /metrics is a 404.
    rules = {
        body["Properties"]["ListenerArn"]["Ref"]: body
        for body in resources.values()
        if body["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule"
        and body["Properties"]["Conditions"][0]["PathPatternConfig"]["Values"] == ["/metrics"]
    }
    assert set(rules) == {"HttpListener", "HttpsListener"}
    assert rules["HttpsListener"]["Condition"] == "HasCertificate"
    for rule in rules.values():
        (action,) = rule["Properties"]["Actions"]
        assert action["Type"] == "fixed-response"
        assert action["FixedResponseConfig"]["StatusCode"] == "404"
        assert json.loads(action["FixedResponseConfig"]["MessageBody"])["error"]["code"] == "not_found"
    # With a certificate, HTTP redirects everything first, /metrics included, to the HTTPS rule.
    redirect = resources["HttpToHttpsRule"]["Properties"]
    assert redirect["Priority"] < rules["HttpListener"]["Properties"]["Priority"]
