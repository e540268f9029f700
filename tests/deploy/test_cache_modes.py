"""The stack's three caches (``CacheMode``): each renders to one encrypted, private cache that the
service and the change-capture function reach over TLS, in the mode the service is told, and each
passes cfn-lint and the IAM checks on its own."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_stack import assert_no_iam_wildcards

Render = Callable[..., dict[str, Any]]
MODES = {
    # mode: (the cache's resource, its type, the endpoint attribute the URL names, STATS_REDIS_CLUSTER)
    "replication-group": ("Redis", "AWS::ElastiCache::ReplicationGroup", "PrimaryEndPoint", "false"),
    "cluster-mode": ("RedisCluster", "AWS::ElastiCache::ReplicationGroup", "ConfigurationEndPoint", "true"),
    "serverless": ("RedisServerless", "AWS::ElastiCache::ServerlessCache", "Endpoint", "true"),
}
CACHE_TYPES = {"AWS::ElastiCache::ReplicationGroup", "AWS::ElastiCache::ServerlessCache"}


def _redis_settings(rendered: dict[str, Any]) -> list[dict[str, Any]]:
    """The Redis settings of the app container and of the change-capture function."""
    resources = rendered["Resources"]
    (app,) = [c for c in resources["TaskDefinition"]["Properties"]["ContainerDefinitions"] if c["Name"] == "app"]
    task = {variable["Name"]: variable["Value"] for variable in app["Environment"]}
    function = resources["ChangeCaptureFunction"]["Properties"]["Environment"]["Variables"]
    return [{name: env[name] for name in ("STATS_REDIS_URL", "STATS_REDIS_CLUSTER")} for env in (task, function)]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_makes_one_encrypted_private_cache(render: Render, mode: str) -> None:
    name, kind, _, _ = MODES[mode]
    resources = render(CacheMode=mode, ImageTag="1.0.0")["Resources"]
    caches = {key: body for key, body in resources.items() if body["Type"] in CACHE_TYPES}
    assert list(caches) == [name]
    properties = caches[name]["Properties"]
    assert properties["SecurityGroupIds"] == [{"Ref": "RedisSecurityGroup"}]
    assert caches[name]["DeletionPolicy"] == "Delete", "a cache only: DynamoDB holds every aggregate's sessions"
    if kind == "AWS::ElastiCache::ServerlessCache":
        # Serverless caches are always encrypted in transit and at rest, and always a cluster.
        assert properties["SubnetIds"] == {"Ref": "PrivateSubnetIds"}
        assert "RedisSubnetGroup" not in resources
        return
    assert resources["RedisSubnetGroup"]["Properties"]["SubnetIds"] == {"Ref": "PrivateSubnetIds"}
    assert properties["TransitEncryptionEnabled"] is True
    assert properties["TransitEncryptionMode"] == "required"
    assert properties["AtRestEncryptionEnabled"] is True
    assert properties["AutomaticFailoverEnabled"] is True
    assert properties["MultiAZEnabled"] is True
    if mode == "cluster-mode":
        assert properties["NumNodeGroups"] == {"Ref": "CacheShards"}
        assert properties["ReplicasPerNodeGroup"] == 1
        assert properties["CacheParameterGroupName"] == "default.redis7.cluster.on"
    else:
        assert properties["NumCacheClusters"] == 2


@pytest.mark.parametrize("mode", MODES)
def test_the_service_and_the_function_reach_that_cache_over_tls_in_its_mode(render: Render, mode: str) -> None:
    name, _, endpoint, cluster = MODES[mode]
    rendered = render(CacheMode=mode, ImageTag="1.0.0")
    task, function = _redis_settings(rendered)
    assert task == function
    url = task["STATS_REDIS_URL"]["Fn::Sub"]
    assert url == f"rediss://${{{name}.{endpoint}.Address}}:${{{name}.{endpoint}.Port}}/0"
    assert task["STATS_REDIS_CLUSTER"] == cluster
    referenced = {match.split(".")[0] for match in re.findall(r"\$\{([^}]+)\}", url)}
    assert referenced <= set(rendered["Resources"])


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_passes_cfn_lint_and_the_iam_checks_on_its_own(
    template: dict[str, Any],
    render: Render,
    run_tool: Callable[..., subprocess.CompletedProcess[str]],
    mode: str,
    tmp_path: Path,
) -> None:
    only = json.loads(json.dumps(template))
    only["Parameters"]["CacheMode"] |= {"Default": mode, "AllowedValues": [mode]}
    path = tmp_path / f"stack-{mode}.json"
    path.write_text(json.dumps(only))
    result = run_tool("cfn-lint", "--include-checks", "I", "--", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_iam_wildcards(render(CacheMode=mode, ImageTag="1.0.0")["Resources"])
