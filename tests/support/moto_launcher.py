#!/usr/bin/env python3
"""Gantry's moto launcher: moto's server, with a few gaps in moto patched in-process.

Usage (exactly like ``moto_server``; ``scripts/stack.sh start`` runs it this way)::

    .stack/venv/bin/python tests/support/moto_launcher.py -H 127.0.0.1 -p 5055

Every command-line option is handed unchanged to ``moto.server.main`` (the function
behind the ``moto_server`` script), so the listening behaviour, the threaded
werkzeug server and the request log are moto's own: each request still appears on
stderr as ``127.0.0.1 - - [date] "PUT /bucket/key HTTP/1.1" 200 -``, which tests
count. The only additions are the patches below and one endpoint of our own:

    GET /gantry-launcher/health  ->  200, JSON {"launcher": "gantry-moto-launcher",
                                      "moto": "<version>", "patches": [<names>]}

``scripts/stack.sh`` uses that endpoint to tell this launcher from a plain
``moto_server`` (which would answer the path as an S3 bucket named
``gantry-launcher``), and restarts a plain one it started itself.

The patches were written against moto 5.2.5 (what ``scripts/setup.sh`` installs).
They touch moto internals, so a different moto version only gets a warning on
stderr, and each patch checks that the internals it relies on are still there and
stops the launcher with a clear message if they are not.

Patches
=======

``cloudfront-function-update-publish``
    Gap: moto 5.2.5 implements CreateFunction, DescribeFunction, GetFunction,
    ListFunctions and DeleteFunction for CloudFront Functions, but not
    UpdateFunction (``PUT /2020-05-31/function/{Name}``, returns 500
    "update_function action has not been implemented") nor PublishFunction
    (``POST /2020-05-31/function/{Name}/publish``, returns 404: the path is not in
    ``moto/cloudfront/urls.py``). It also keeps a single copy of each function and
    ignores the ``Stage`` query parameter, so there is no LIVE stage at all.
    Gantry's site deploys update a viewer-request function and publish it.

    What the patch does:

    * Adds ``{0}/2020-05-31/function/(?P<function_name>[^/]+)/publish$`` to
      moto's CloudFront ``url_paths``. (PUT on ``function/{Name}`` already reaches
      ``CloudFrontResponse.dispatch``: moto registers every URL for every method and
      picks the operation from botocore's model by method + path.)
    * A function keeps moto's object as its DEVELOPMENT stage and gets a ``live``
      snapshot (config, code, ETag, times) once published.
    * UpdateFunction: ``If-Match`` missing -> 400 ``InvalidIfMatchVersion``; not the
      DEVELOPMENT ETag -> 412 ``PreconditionFailed``; otherwise replaces
      FunctionConfig and FunctionCode, gives the DEVELOPMENT stage a new ETag and
      LastModifiedTime, Status ``UNPUBLISHED``. Returns the FunctionSummary as the
      payload and the new ETag in the ``ETtag`` header *and* the ``ETag`` header:
      AWS's model (botocore, and the Smithy model aws-sdk-cloudfront is generated
      from) names UpdateFunctionResult's ETag header ``ETtag`` (sic), so the SDKs
      read that one; ``ETag`` is there for anything that reads the usual name.
    * PublishFunction: the same ``If-Match`` checks against the DEVELOPMENT ETag;
      copies DEVELOPMENT to LIVE with a fresh LIVE ETag; both stages then report
      Status ``UNASSOCIATED``. Returns the LIVE FunctionSummary (Stage ``LIVE``).
      The DEVELOPMENT ETag does not change, so publishing again is allowed.
    * A request with no ``If-Match`` header at all never reaches these methods:
      moto's router only matches an operation when the model's required headers
      are present, so it answers 404 with an empty body (AWS: 400
      ``InvalidIfMatchVersion``). The same already holds for moto's own
      DeleteFunction, UpdateDistribution and DeleteDistribution.
    * DescribeFunction and GetFunction honour ``?Stage=LIVE`` (summary/code and
      ETag of the published copy; 404 ``NoSuchFunctionExists`` if never
      published); without Stage, or with DEVELOPMENT, they behave as before,
      except that GetFunction now labels the code ``application/octet-stream``
      (moto said ``application/xml``).
      ListFunctions with ``?Stage=LIVE`` lists only published functions, with
      their LIVE summaries.
    * Status values are an approximation of AWS (which documents no list):
      ``UNPUBLISHED`` until published or after an update, then ``UNASSOCIATED``.
      Association with a distribution is not checked or reported.

``cloudfront-function-associations``
    Gap: moto's ``DefaultCacheBehaviour`` (also the base of ``CacheBehaviour``)
    hard-codes ``FunctionAssociations`` to ``{"Quantity": 0}``, so a
    viewer-request function sent with CreateDistribution/UpdateDistribution is
    silently dropped and GetDistributionConfig never shows it.
    Patch: after moto's constructor runs, keep the request's
    ``FunctionAssociations.Items`` (FunctionARN + EventType), with Quantity
    recomputed from the items. Neither that the ARN exists nor that it is
    published is checked (AWS would check both). ``LambdaFunctionAssociations``
    is still dropped (Gantry does not use it).

``cloudfront-invalidation-status``
    Gap: moto creates every invalidation with Status ``"COMPLETED"``; AWS uses
    ``"InProgress"`` and ``"Completed"`` (mixed case), and the SDK waiter
    ``InvalidationCompleted`` (aws-sdk-cloudfront's
    ``wait_until_invalidation_completed``, botocore's ``invalidation_completed``)
    matches ``Invalidation.Status == "Completed"`` exactly, so against plain moto
    it never succeeds and runs until its timeout. Patch: invalidations are created
    with Status ``"Completed"`` (still immediately complete: no InProgress phase).

``ecs-awsvpc-network``
    Gaps: (a) RunTask with ``networkConfiguration.awsvpcConfiguration`` that names
    no ``securityGroups`` fails with a KeyError (500), and CreateService /
    UpdateService do the same in moto's network validation; ECS makes
    ``securityGroups`` optional and uses the VPC's default group. (b) RunTask
    into a VPC created with CreateVpc (DNS hostnames off) fails with
    ``'NetworkInterface' object has no attribute 'private_dns_name'`` (500).
    Patch: a missing ``securityGroups`` is treated as ``[]`` when validating and
    when creating the task's ENI (moto then attaches the VPC's default group);
    the stored/echoed configuration keeps the request's shape. Subnets (and any
    named security groups) are still checked against moto's EC2, so create the
    VPC, subnet and groups in moto first; unknown ones give moto's
    ``InvalidParameterException``. ``NetworkInterface.private_dns_name`` gets a
    class default of None (the task's ``privateDnsName`` detail is then omitted).

``ecs-task-level-memory``
    Gap: a Fargate task definition with only task-level ``cpu``/``memory`` (no
    ``memory``/``memoryReservation`` per container) *registers* fine in moto
    5.2.5, but RunTask with it fails with ``TypeError: += 'int' and 'NoneType'``
    (500) in moto's placement arithmetic. (Registering a task definition with no
    memory anywhere is still rejected, as ECS does.) Patch: a container without
    its own memory counts 0 and the task's requirement is the task-level memory.

``ecs-service-deployments``
    Gap: moto's UpdateService only swaps ``Service.taskDefinition`` (the PRIMARY
    deployment keeps the old task definition, ``rolloutState`` stays IN_PROGRESS
    unless ``MOTO_ECS_SERVICE_RUNNING`` is set), nothing ever progresses, there
    are no service events, and ListServiceDeployments /
    DescribeServiceDeployments / DescribeServiceRevisions answer 500. Gantry's
    rollout polls all of that. Patch (services with the ECS deployment
    controller; CODE_DEPLOY/EXTERNAL ones are left to moto):

    * CreateService starts a PRIMARY deployment (0 running) and UpdateService
      starts a new one when the task definition changes, ``forceNewDeployment``
      is true, or networkConfiguration / platformVersion change: a new deployment
      dict (``id`` ``ecs-svc/<19 digits>``, ``status`` PRIMARY, ``rolloutState``
      IN_PROGRESS, ``rolloutStateReason`` "ECS deployment <id> in progress.",
      ``taskDefinition`` (ARN), ``desiredCount``, ``runningCount`` 0,
      ``pendingCount`` 0, ``failedTasks`` 0, ``createdAt``/``updatedAt``,
      ``launchType``, ``platformVersion``, ``networkConfiguration``) goes first in
      ``deployments``, every older one becomes ACTIVE, and the service's
      ``taskDefinition`` is the new ARN (moto stored the request's string).
      A desiredCount-only update starts no deployment: the PRIMARY's
      desiredCount changes and the next poll scales it (events included).
    * Each poll advances the service's PRIMARY deployment one step. A poll is
      one DescribeServices call (per service described), ListServiceDeployments
      (that service) or DescribeServiceDeployments (each service owning one of
      the ARNs, once per call). Nothing else advances: not Create/UpdateService,
      TagResource, ListServices or DescribeServiceRevisions. Steps for
      ``complete``, with D = desiredCount: poll 1 pending D ("has started D
      tasks"); poll 2 running ceil(D/2); poll 3 running D, older deployments
      drained to 0 ("has stopped N running tasks"); poll 4 rolloutState
      COMPLETED ("ECS deployment <id> completed."), older deployments removed,
      events "(service S) (deployment <id>) deployment completed." and
      "(service S) has reached a steady state.". Service runningCount and
      pendingCount are the sums over its deployments (the cluster's task counts
      follow); events are newest first, at most 100.
    * ``fail``: poll 1 pending D; poll 2 nothing running, failedTasks += D;
      poll 3, if ``deploymentConfiguration.deploymentCircuitBreaker.enable``:
      rolloutState FAILED, rolloutStateReason "ECS deployment circuit breaker:
      tasks failed to start.", and with ``rollback: true`` and an earlier
      COMPLETED deployment, the failed deployment becomes ACTIVE and a new
      PRIMARY deployment of that earlier task definition starts
      (rolloutStateReason "ECS deployment circuit breaker: rolling back to
      deploymentId <id>.", service taskDefinition back to the earlier one, event
      "(service S) rolling back to deployment <id>."); it then completes like
      ``complete`` (4 more polls), which also removes the failed deployment.
      With ``rollback: false`` (or nothing to roll back to, e.g. the very first
      deployment) the FAILED deployment stays PRIMARY. Without the circuit
      breaker (ECS's default) ECS keeps launching tasks: the deployment stays
      IN_PROGRESS and every 3 polls adds D failedTasks.
    * ``hang``: pending D, running 0, IN_PROGRESS forever; the older deployment
      keeps its running tasks.
    * Service objects also get ``deploymentConfiguration`` (the request's,
      merged over ECS's defaults: breaker off, 200/100 percent),
      ``currentServiceDeployment`` (ARN of the newest service deployment, as
      ECS returns from Create/UpdateService), ``currentServiceRevisions`` and
      ``createdAt``. CreateService keeps ``healthCheckGracePeriodSeconds``,
      ``enableExecuteCommand`` and ``capacityProviderStrategy`` as ECS does (moto
      keeps them only from UpdateService).
    * Service Connect: ``serviceConnectConfiguration`` from Create/UpdateService
      is kept per deployment, as ECS reports it (``deployments[].serviceConnect
      Configuration``; moto drops it), with ECS's defaults filled in: a
      service's ``discoveryName`` is its ``portName``, an alias's ``dnsName`` is
      ``DISCOVERYNAME.NAMESPACEID``; ``enabled: false`` turns it off. A changed
      Service Connect or ``serviceRegistries`` starts a new deployment.
    * Service deployments (one per Create/UpdateService that started a
      deployment; a circuit-breaker rollback belongs to the service deployment
      that failed): ``serviceDeploymentArn``
      ``arn:aws:ecs:REGION:ACCOUNT:service-deployment/CLUSTER/SERVICE/ID`` (ID
      random, like ``AB12CD34-xY9...``; unrelated to the ``ecs-svc/`` id, as in
      ECS; correlate through ``currentServiceDeployment``), ``status`` PENDING
      (until the first poll), IN_PROGRESS, SUCCESSFUL, ROLLBACK_IN_PROGRESS ->
      ROLLBACK_SUCCESSFUL (``statusReason`` and ``rollback {reason, startedAt,
      serviceRevisionArn}`` set), STOPPED (failed without rollback, or
      superseded by a newer UpdateService; ``statusReason`` says which),
      ``createdAt``/``startedAt``/``finishedAt``/``stoppedAt``/``updatedAt``,
      ``targetServiceRevision`` and ``sourceServiceRevisions`` (ServiceRevisionSummary
      with live requested/running/pending task counts), ``deploymentConfiguration``
      (snapshot), ``deploymentCircuitBreaker {status DISABLED | MONITORING |
      TRIGGERED | MONITORING_COMPLETE, failureCount, threshold}``, ``alarms
      {status DISABLED}``. ListServiceDeployments returns the briefs newest first,
      filters by ``status`` and ``createdAt {before, after}``, pages with
      ``maxResults`` (default 20) / ``nextToken``; an unknown service is
      ``ServiceNotFoundException``. DescribeServiceDeployments reports unknown
      ARNs in ``failures`` (reason MISSING).
    * Service revisions (``arn:aws:ecs:REGION:ACCOUNT:service-revision/CLUSTER/
      SERVICE/<19 digits>``): one per started deployment (a rollback reuses the
      revision it returns to), with taskDefinition, launchType, platformVersion,
      networkConfiguration, containerImages (name + image from the task
      definition) and createdAt; DescribeServiceRevisions serves them.
    * Not modelled: tasks of services (ListTasks shows none), load balancers,
      alarms, deployment strategies other than rolling, deleting services while
      deploying (an INACTIVE service no longer advances), ``MOTO_ECS_SERVICE_*``
      environment variables (ignored for these services).

``ecs-run-task-lifecycle``
    Gap: moto's RunTask tasks start RUNNING and walk RUNNING -> DEACTIVATING ->
    STOPPING -> DEPROVISIONING -> STOPPED one DescribeTasks at a time, with
    ``desiredStatus`` RUNNING, no ``stoppedReason``/``stopCode``, containers
    forever PENDING with ``exitCode`` 0: a one-off task (a migration) can't
    succeed or fail. Patch, for tasks started by RunTask: the RunTask answer
    says ``lastStatus`` PROVISIONING (containers PENDING, no exitCode); the 1st
    DescribeTasks that includes the task says RUNNING (``startedAt``, containers
    RUNNING); the 2nd says STOPPED with ``desiredStatus`` STOPPED, ``stopCode``
    EssentialContainerExited, ``stoppedReason`` "Essential container in task
    exited", ``stoppedAt``, containers STOPPED with the chosen ``exitCode``
    (see below). StopTask before that: ``stopCode`` UserInitiated, the given
    reason (or "Task stopped by user"), containers' exitCode 137. The task also
    reports the task definition's ``cpu``/``memory``.

Choosing ECS behaviours in tests
================================

Rollouts (``ecs-service-deployments``): tag the service with
``gantry-test-behaviour`` = ``complete`` (the default, also when the tag is
absent), ``fail`` or ``hang``, either at CreateService (``tags``) or later with
TagResource on the service ARN (UntagResource returns to ``complete``). The tag
is read on every poll, so it can change in mid-rollout: e.g. re-tag a hanging
service ``complete`` and it finishes in 3 more polls. Rollback deployments
always complete. For ``fail`` to roll back as ECS does, the service needs
``deploymentConfiguration.deploymentCircuitBreaker {enable: true, rollback:
true}`` (CreateService or UpdateService) and an earlier COMPLETED deployment.
Any other tag value is rejected with ``InvalidParameterException``, so a typo
can't silently mean ``complete``.

One-off tasks (``ecs-run-task-lifecycle``): the container ``exitCode`` comes
from, first match wins: an environment variable ``GANTRY_TEST_EXIT_CODE=N`` in
RunTask's ``overrides.containerOverrides[*].environment``; the same variable in
the task definition's ``containerDefinitions[*].environment``; a task
definition tag ``gantry-test-exit-code`` = N; otherwise 0. The value ``hang``
keeps the task RUNNING until StopTask; anything that is neither an integer nor
``hang`` makes RunTask fail with ``InvalidParameterException``.

Adding a patch
==============

1. Write a function that changes moto (subclass, wrap or replace methods on
   moto's model/response classes, add entries to a ``moto/<service>/urls.py``
   ``url_paths`` dict), decorate it with ``@patch("short-name")``, and start it
   with ``_require(...)`` for every moto internal it touches, so a moto upgrade
   fails loudly instead of silently un-patching.
2. Patches run in definition order, before moto's server app exists (moto builds
   each service's Flask app, from ``url_paths``, on that service's first request),
   so new ``url_paths`` entries and new ``CloudFrontResponse``-style methods are
   picked up. A response method is found by the operation name from botocore's
   model in snake_case (``UpdateFunction`` -> ``update_function``) and must be a
   plain function on the class; with ``automated_parameter_parsing`` (CloudFront
   has it) ``self._get_param("Member")`` reads URI, query, header and body
   members by their model names, and returning ``ActionResult({...})`` serializes
   the output shape (payload, header members) from the model.
3. Document it in the "Patches" section above: the moto gap (what moto does,
   how it shows), why Gantry needs it, what the patch changes.
4. Check it with the awscli in ``.stack/venv`` against a launcher on a spare port
   (``.stack/venv/bin/python tests/support/moto_launcher.py -p 5099``), then
   ``scripts/stack.sh restart``. ``GET /gantry-launcher/health`` lists the
   applied patches.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import math
import os
import string
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

LAUNCHER_NAME = "gantry-moto-launcher"
HEALTH_PATH = "/gantry-launcher/health"
TESTED_MOTO_VERSION = "5.2.5"

_PATCHES: list[tuple[str, Callable[[], None]]] = []
APPLIED: list[str] = []


def _log(message: str) -> None:
    print(f"[moto-launcher] {message}", file=sys.stderr, flush=True)


def patch(name: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a patch; patches are applied in definition order by apply_patches()."""

    def register(fn: Callable[[], None]) -> Callable[[], None]:
        _PATCHES.append((name, fn))
        return fn

    return register


def _require(owner: Any, *attributes: str) -> None:
    """Fail loudly when a moto internal a patch relies on has gone away."""
    for attribute in attributes:
        if not hasattr(owner, attribute):
            raise SystemExit(
                f"[moto-launcher] moto internals changed: {getattr(owner, '__name__', owner)!r} "
                f"has no {attribute!r}; this launcher was written for moto "
                f"{TESTED_MOTO_VERSION}. Update tests/support/moto_launcher.py."
            )


# --------------------------------------------------------------------------- patches


@patch("cloudfront-function-update-publish")
def _cloudfront_function_update_publish() -> None:
    from moto.cloudfront import models, urls
    from moto.cloudfront.exceptions import (
        CloudFrontException,
        InvalidIfMatchVersion,
        NoSuchFunctionExists,
    )
    from moto.cloudfront.models import CloudFrontBackend, CloudFrontFunction, random_id
    from moto.cloudfront.responses import CloudFrontResponse
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow

    _require(CloudFrontBackend, "describe_function", "get_function", "list_functions")
    _require(CloudFrontResponse, "describe_function", "get_function", "list_functions")
    _require(models, "random_id")
    _require(urls, "url_paths")
    if hasattr(CloudFrontResponse, "update_function") or hasattr(
        CloudFrontResponse, "publish_function"
    ):
        _log(
            "note: this moto already has update_function/publish_function; "
            "the launcher's versions replace them"
        )

    class PreconditionFailed(CloudFrontException):
        def __init__(self) -> None:
            super().__init__(
                "PreconditionFailed",
                "The request failed because it didn't meet the preconditions in one "
                "or more request-header fields.",
            )

    publish_path = "{0}/2020-05-31/function/(?P<function_name>[^/]+)/publish$"
    urls.url_paths[publish_path] = CloudFrontResponse.dispatch

    # ---- model: the DEVELOPMENT stage is moto's object; LIVE is a snapshot dict.
    CloudFrontFunction.live = None  # type: ignore[attr-defined]

    def live_summary(self: CloudFrontFunction) -> dict[str, Any]:
        live = self.live  # type: ignore[attr-defined]
        return {
            "Name": self.name,
            "Status": live["status"],
            "FunctionConfig": live["config"],
            "FunctionMetadata": {
                "FunctionARN": self.arn,
                "Stage": "LIVE",
                "CreatedTime": live["created_time"],
                "LastModifiedTime": live["last_modified_time"],
            },
        }

    CloudFrontFunction.live_summary = property(live_summary)  # type: ignore[attr-defined]

    def check_if_match(if_match: str | None, etag: str) -> None:
        if not if_match:
            raise InvalidIfMatchVersion
        if if_match != etag:
            raise PreconditionFailed

    def function_stage(
        self: CloudFrontBackend, name: str, stage: str | None
    ) -> tuple[CloudFrontFunction, dict[str, Any], bytes, str]:
        """(function, summary, code, etag) of one stage of a function."""
        function = self.describe_function(name=name)
        if stage == "LIVE":
            if function.live is None:  # type: ignore[attr-defined]
                raise NoSuchFunctionExists(name)
            live = function.live  # type: ignore[attr-defined]
            return function, function.live_summary, live["code"], live["etag"]  # type: ignore[attr-defined]
        return function, function.function_summary, function.code, function.etag

    def update_function(
        self: CloudFrontBackend,
        name: str,
        if_match: str | None,
        function_config: dict[str, Any],
        function_code: bytes,
    ) -> CloudFrontFunction:
        function = self.describe_function(name=name)
        check_if_match(if_match, function.etag)
        function.config = function_config
        function.code = function_code
        function.status = "UNPUBLISHED"
        function.last_modified_time = utcnow()
        function.etag = random_id()
        return function

    def publish_function(
        self: CloudFrontBackend, name: str, if_match: str | None
    ) -> CloudFrontFunction:
        function = self.describe_function(name=name)
        check_if_match(if_match, function.etag)
        now = utcnow()
        previous = function.live  # type: ignore[attr-defined]
        function.live = {  # type: ignore[attr-defined]
            "config": copy.deepcopy(function.config),
            "code": function.code,
            "etag": random_id(),
            "status": "UNASSOCIATED",
            "created_time": previous["created_time"] if previous else now,
            "last_modified_time": now,
        }
        function.status = "UNASSOCIATED"
        return function

    CloudFrontBackend.function_stage = function_stage  # type: ignore[attr-defined]
    CloudFrontBackend.update_function = update_function  # type: ignore[attr-defined]
    CloudFrontBackend.publish_function = publish_function  # type: ignore[attr-defined]

    # ---- responses
    def r_update_function(self: CloudFrontResponse) -> ActionResult:
        function = self.backend.update_function(  # type: ignore[attr-defined]
            name=self._get_param("Name"),
            if_match=self._get_param("IfMatch"),
            function_config=self._get_param("FunctionConfig", {}),
            function_code=self._get_param("FunctionCode"),
        )
        # The model puts UpdateFunctionResult.ETag in a header named "ETtag"
        # (which the serializer writes); add the conventional name as well.
        self.response_headers["ETag"] = function.etag
        return ActionResult(
            {"FunctionSummary": function.function_summary, "ETag": function.etag}
        )

    def r_publish_function(self: CloudFrontResponse) -> ActionResult:
        function = self.backend.publish_function(  # type: ignore[attr-defined]
            name=self._get_param("Name"), if_match=self._get_param("IfMatch")
        )
        return ActionResult({"FunctionSummary": function.live_summary})

    def r_describe_function(self: CloudFrontResponse) -> ActionResult:
        _, summary, _, etag = self.backend.function_stage(  # type: ignore[attr-defined]
            self._get_param("Name"), self._get_param("Stage")
        )
        return ActionResult({"FunctionSummary": summary, "ETag": etag})

    def r_get_function(self: CloudFrontResponse) -> ActionResult:
        _, _, code, etag = self.backend.function_stage(  # type: ignore[attr-defined]
            self._get_param("Name"), self._get_param("Stage")
        )
        # moto's serializer labels every body application/xml; the code is not XML.
        self.response_headers["Content-Type"] = "application/octet-stream"
        return ActionResult(
            {
                "FunctionCode": code,
                "ETag": etag,
                "ContentType": "application/octet-stream",
            }
        )

    original_list_functions = CloudFrontResponse.list_functions

    def r_list_functions(self: CloudFrontResponse) -> ActionResult:
        if self._get_param("Stage") != "LIVE":
            return original_list_functions(self)
        functions = [
            f for f in self.backend.functions.values() if f.live is not None  # type: ignore[attr-defined]
        ]
        max_items = self._get_int_param("MaxItems")
        return ActionResult(
            {
                "FunctionList": {
                    "NextMarker": None,
                    "MaxItems": max_items or 100,
                    "Quantity": len(functions),
                    "Items": [f.live_summary for f in functions],  # type: ignore[attr-defined]
                }
            }
        )

    CloudFrontResponse.update_function = r_update_function  # type: ignore[attr-defined]
    CloudFrontResponse.publish_function = r_publish_function  # type: ignore[attr-defined]
    CloudFrontResponse.describe_function = r_describe_function  # type: ignore[method-assign]
    CloudFrontResponse.get_function = r_get_function  # type: ignore[method-assign]
    CloudFrontResponse.list_functions = r_list_functions  # type: ignore[method-assign]


@patch("cloudfront-function-associations")
def _cloudfront_function_associations() -> None:
    from moto.cloudfront.models import DefaultCacheBehaviour

    _require(DefaultCacheBehaviour, "__init__")
    original_init = DefaultCacheBehaviour.__init__

    def __init__(self: DefaultCacheBehaviour, config: dict[str, Any]) -> None:
        original_init(self, config)
        associations = config.get("FunctionAssociations") or {}
        items = list(associations.get("Items") or [])
        if items:
            self.function_associations = {"Quantity": len(items), "Items": items}
        else:
            self.function_associations = {"Quantity": 0}

    # CacheBehaviour calls super().__init__, so it inherits the fix.
    DefaultCacheBehaviour.__init__ = __init__  # type: ignore[method-assign]


@patch("cloudfront-invalidation-status")
def _cloudfront_invalidation_status() -> None:
    from moto.cloudfront.models import Invalidation

    _require(Invalidation, "__init__")
    original_init = Invalidation.__init__

    def __init__(self: Invalidation, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.status = "Completed"

    Invalidation.__init__ = __init__  # type: ignore[method-assign]


# ---- ECS: shared by the ECS patches below (see "ECS patches" in the docstring)

ECS_BEHAVIOUR_TAG = "gantry-test-behaviour"
ECS_BEHAVIOURS = ("complete", "fail", "hang")
ECS_EXIT_CODE_ENV = "GANTRY_TEST_EXIT_CODE"
ECS_EXIT_CODE_TAG = "gantry-test-exit-code"
ECS_CIRCUIT_BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start."
ECS_SUPERSEDED_REASON = "Service deployment stopped: a newer service deployment started."
ECS_MAX_EVENTS = 100
# moto's server is threaded; one lock serialises every launcher-owned ECS state change.
_ECS_LOCK = threading.RLock()


def _ecs_tag_value(tags: Any, key: str) -> str | None:
    for tag in tags or []:
        if isinstance(tag, dict) and tag.get("key") == key:
            return tag.get("value")
    return None


def _ecs_check_behaviour(value: Any) -> None:
    """Reject an unknown gantry-test-behaviour value (a typo would silently mean 'complete')."""
    from moto.ecs.exceptions import InvalidParameterException

    if value is not None and value not in ECS_BEHAVIOURS:
        raise InvalidParameterException(
            f"gantry moto launcher: tag {ECS_BEHAVIOUR_TAG}={value!r} is not one of "
            f"{', '.join(ECS_BEHAVIOURS)}"
        )


@patch("ecs-awsvpc-network")
def _ecs_awsvpc_network() -> None:
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.ecs.models import EC2ContainerServiceBackend, Service

    _require(Service, "_validate_network")
    # moto sets NetworkInterface.private_dns_name only in VPCs with DNS hostnames
    # enabled, and ECS's Task reads it unconditionally: a class-level default.
    if not hasattr(NetworkInterface, "private_dns_name"):
        NetworkInterface.private_dns_name = None  # type: ignore[attr-defined]
    _require(EC2ContainerServiceBackend, "run_task")
    original_validate = Service._validate_network
    original_run_task = EC2ContainerServiceBackend.run_task
    run_task_signature = inspect.signature(original_run_task)
    if "networking_configuration" not in run_task_signature.parameters:
        _require(original_run_task, "networking_configuration (parameter)")

    def _without_groups(nc: Any) -> bool:
        return (
            isinstance(nc, dict)
            and isinstance(nc.get("awsvpcConfiguration"), dict)
            and "securityGroups" not in nc["awsvpcConfiguration"]
        )

    def _with_empty_groups(nc: dict[str, Any]) -> dict[str, Any]:
        probe = copy.deepcopy(nc)
        probe["awsvpcConfiguration"]["securityGroups"] = []
        return probe

    def _validate_network(self: Service, nc: Any) -> Any:
        if _without_groups(nc):
            # Subnets are still checked against moto's EC2; the stored configuration
            # keeps the request's shape (no securityGroups member).
            original_validate(self, _with_empty_groups(nc))
            return nc
        return original_validate(self, nc)

    @functools.wraps(original_run_task)
    def run_task(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> Any:
        bound = run_task_signature.bind(self, *args, **kwargs)
        nc = bound.arguments.get("networking_configuration")
        if _without_groups(nc):
            # No groups -> moto's ENI falls back to the VPC's default security group,
            # which is what ECS does.
            bound.arguments["networking_configuration"] = _with_empty_groups(nc)
        return original_run_task(*bound.args, **bound.kwargs)

    Service._validate_network = _validate_network  # type: ignore[method-assign]
    EC2ContainerServiceBackend.run_task = run_task  # type: ignore[method-assign]


@patch("ecs-task-level-memory")
def _ecs_task_level_memory() -> None:
    from moto.ecs.models import EC2ContainerServiceBackend

    _require(EC2ContainerServiceBackend, "_calculate_task_resource_requirements")
    original_calculate = EC2ContainerServiceBackend._calculate_task_resource_requirements
    memory_keys = ("memory", "memoryReservation", "Memory", "MemoryReservation")

    def calculate(task_definition: Any) -> dict[str, Any]:
        definitions = task_definition.container_definitions
        if all(any(cd.get(k) is not None for k in memory_keys) for cd in definitions):
            return original_calculate(task_definition)
        # Containers without their own memory count 0; the task-level memory (what
        # Fargate task definitions carry) is the task's requirement.
        proxy = types.SimpleNamespace(
            container_definitions=[
                cd if any(cd.get(k) is not None for k in memory_keys) else {**cd, "memoryReservation": 0}
                for cd in definitions
            ]
        )
        requirements = original_calculate(proxy)
        try:
            task_memory = int(str(getattr(task_definition, "memory", None) or 0))
        except ValueError:  # e.g. "1 GB"; moto's placement only needs a number
            task_memory = 0
        requirements["MEMORY"] = max(requirements["MEMORY"], task_memory)
        return requirements

    EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(calculate)  # type: ignore[method-assign,assignment]


@patch("ecs-service-deployments")
def _ecs_service_deployments() -> None:
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.ecs.exceptions import ServiceNotFoundException
    from moto.ecs.models import EC2ContainerServiceBackend, Service
    from moto.ecs.responses import EC2ContainerServiceResponse
    from moto.moto_api._internal import mock_random

    _require(
        EC2ContainerServiceBackend,
        "create_service",
        "update_service",
        "tag_resource",
        "describe_task_definition",
        "_get_service",
        "_get_cluster",
    )
    _require(Service, "_validate_network", "arn")
    _require(EC2ContainerServiceResponse, "create_service", "describe_services", "ecs_backend")
    _require(ActionResult, "result")
    _require(mock_random, "randint", "uuid4", "choice")
    for name in ("list_service_deployments", "describe_service_deployments", "describe_service_revisions"):
        if hasattr(EC2ContainerServiceResponse, name):
            _log(f"note: this moto already has ECS {name}; the launcher's version replaces it")

    original_create_service = EC2ContainerServiceBackend.create_service
    original_update_service = EC2ContainerServiceBackend.update_service
    original_tag_resource = EC2ContainerServiceBackend.tag_resource
    original_r_create_service = EC2ContainerServiceResponse.create_service
    original_r_describe_services = EC2ContainerServiceResponse.describe_services

    default_deployment_configuration: dict[str, Any] = {
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
    }

    class ServiceState:
        """Launcher-owned bookkeeping of one service (kept on the moto Service object)."""

        def __init__(self) -> None:
            # deployment id -> {"tick", "sd" (service deployment record), "rev", "rollback"}
            self.deps: dict[str, dict[str, Any]] = {}
            self.sds: list[dict[str, Any]] = []  # service deployment records, oldest first
            self.revisions: dict[str, dict[str, Any]] = {}  # service revision ARN -> record
            # (deployment id, revision ARN, task definition ARN) of the last COMPLETED one
            self.last_completed: tuple[str, str, str | None] | None = None

    # New Service attributes, so services moto made before (or without) the patch
    # still serialize.
    Service._gantry_state = None  # type: ignore[attr-defined]
    Service.current_service_deployment = None  # type: ignore[attr-defined]
    Service.deployment_configuration = None  # type: ignore[attr-defined]
    Service.created_at = None  # type: ignore[attr-defined]

    def current_service_revisions(self: Service) -> list[dict[str, Any]] | None:
        st = self._gantry_state  # type: ignore[attr-defined]
        if st is None:
            return None
        arns: list[str] = []
        for d in self.deployments:
            dst = st.deps.get(d.get("id"))
            if dst and dst["rev"] not in arns:
                arns.append(dst["rev"])
        return [revision_summary(self, arn) for arn in arns]

    Service.current_service_revisions = property(current_service_revisions)  # type: ignore[attr-defined]

    # ---- helpers
    def arn_prefix(service: Service) -> str:
        # arn:<partition>:ecs:<region>:<account>
        return service.cluster_arn.rsplit(":", 1)[0]

    def digits19() -> str:
        return str(mock_random.randint(10**18, 10**19 - 1))

    def service_deployment_id() -> str:
        upper = string.ascii_uppercase + string.digits
        mixed = string.ascii_letters + string.digits
        return "".join(mock_random.choice(upper) for _ in range(8)) + "-" + "".join(
            mock_random.choice(mixed) for _ in range(12)
        )

    def task_ids(n: int) -> str:
        return " ".join(f"(task {mock_random.uuid4().hex})" for _ in range(n))

    def event(service: Service, message: str) -> None:
        service.events.insert(
            0, {"id": str(mock_random.uuid4()), "createdAt": utcnow(), "message": message}
        )
        del service.events[ECS_MAX_EVENTS:]

    def behaviour_of(service: Service) -> str:
        value = _ecs_tag_value(service.tags, ECS_BEHAVIOUR_TAG)
        return value if value in ECS_BEHAVIOURS else "complete"

    def breaker_of(service: Service) -> dict[str, Any]:
        conf = service.deployment_configuration or {}  # type: ignore[attr-defined]
        return conf.get("deploymentCircuitBreaker") or {}

    def merged_configuration(current: Any, requested: Any) -> dict[str, Any]:
        merged = copy.deepcopy(current or default_deployment_configuration)
        for key, value in (requested or {}).items():
            if value is not None:
                merged[key] = copy.deepcopy(value)
        return merged

    def revision_summary(service: Service, rev_arn: str) -> dict[str, Any]:
        st = service._gantry_state  # type: ignore[attr-defined]
        requested = running = pending = 0
        for d in service.deployments:
            dst = st.deps.get(d.get("id"))
            if dst and dst["rev"] == rev_arn:
                requested += d.get("desiredCount") or 0
                running += d.get("runningCount") or 0
                pending += d.get("pendingCount") or 0
        return {
            "arn": rev_arn,
            "requestedTaskCount": requested,
            "runningTaskCount": running,
            "pendingTaskCount": pending,
        }

    def set_counts(backend: EC2ContainerServiceBackend, service: Service) -> None:
        running = sum(d.get("runningCount") or 0 for d in service.deployments)
        pending = sum(d.get("pendingCount") or 0 for d in service.deployments)
        cluster = backend.clusters.get(service.cluster_name)
        if cluster is not None:
            cluster.running_tasks_count += running - (service.running_count or 0)
            cluster.pending_tasks_count += pending - (service.pending_count or 0)
        service.running_count = running
        service.pending_count = pending

    def new_revision(service: Service, backend: EC2ContainerServiceBackend, td_arn: str | None) -> str:
        st = service._gantry_state  # type: ignore[attr-defined]
        arn = f"{arn_prefix(service)}:service-revision/{service.cluster_name}/{service.name}/{digits19()}"
        images = []
        if td_arn:
            try:
                td = backend.describe_task_definition(td_arn)
                images = [
                    {"containerName": c.get("name"), "image": c.get("image")}
                    for c in td.container_definitions
                ]
            except Exception:  # noqa: BLE001 - a deregistered/deleted TD only loses images
                images = []
        fargate = service.launch_type == "FARGATE"
        st.revisions[arn] = {
            "serviceRevisionArn": arn,
            "serviceArn": service.arn,
            "clusterArn": service.cluster_arn,
            "taskDefinition": td_arn,
            "launchType": service.launch_type,
            "platformVersion": service.platform_version or ("LATEST" if fargate else None),
            "platformFamily": "Linux" if fargate else None,
            "networkConfiguration": copy.deepcopy(service.network_configuration) or None,
            "containerImages": images,
            "loadBalancers": copy.deepcopy(service.load_balancers),
            "serviceRegistries": copy.deepcopy(service.service_registries),
            "createdAt": utcnow(),
        }
        return arn

    def connect_as_reported(conf: Any) -> dict[str, Any] | None:
        if not conf or not conf.get("enabled"):
            return None
        namespace = conf.get("namespace") or ""
        ns_id = namespace.rsplit("/", 1)[-1]
        services = []
        for svc in conf.get("services") or []:
            discovery = svc.get("discoveryName") or svc.get("portName")
            reported = {"portName": svc.get("portName"), "discoveryName": discovery}
            aliases = [
                {"port": a.get("port"), "dnsName": a.get("dnsName") or f"{discovery}.{ns_id}"}
                for a in svc.get("clientAliases") or []
            ]
            if aliases:
                reported["clientAliases"] = aliases
            services.append(reported)
        view: dict[str, Any] = {"enabled": True, "namespace": namespace}
        if services:
            view["services"] = services
        return view

    def new_deployment(service: Service, td_arn: str | None, reason: str | None = None) -> dict[str, Any]:
        now = utcnow()
        dep_id = f"ecs-svc/{digits19()}"
        fargate = service.launch_type == "FARGATE"
        return {
            "id": dep_id,
            "status": "PRIMARY",
            "taskDefinition": td_arn,
            "desiredCount": service.desired_count,
            "pendingCount": 0,
            "runningCount": 0,
            "failedTasks": 0,
            "createdAt": now,
            "updatedAt": now,
            "launchType": service.launch_type,
            "platformVersion": service.platform_version or ("LATEST" if fargate else None),
            "platformFamily": "Linux" if fargate else None,
            "networkConfiguration": copy.deepcopy(service.network_configuration) or None,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": reason or f"ECS deployment {dep_id} in progress.",
            "serviceConnectConfiguration": copy.deepcopy(getattr(service, "_gantry_connect", None)),
        }

    def start_deployment(backend: EC2ContainerServiceBackend, service: Service, td_arn: str | None) -> None:
        """The UpdateService/CreateService part: new PRIMARY deployment, new service deployment."""
        st = service._gantry_state  # type: ignore[attr-defined]
        now = utcnow()
        if service.deployments and service.deployments[0].get("status") == "PRIMARY":
            previous = st.deps.get(service.deployments[0].get("id"))
            if previous and previous["sd"]["status"] in ("PENDING", "IN_PROGRESS", "ROLLBACK_IN_PROGRESS"):
                rec = previous["sd"]
                rec.update(status="STOPPED", statusReason=ECS_SUPERSEDED_REASON)
                rec.update(stoppedAt=now, finishedAt=now, updatedAt=now)
        sources: list[str] = []
        for d in service.deployments:
            d["status"] = "ACTIVE"
            dst = st.deps.get(d.get("id"))
            if dst and dst["rev"] not in sources:
                sources.append(dst["rev"])
        rev = new_revision(service, backend, td_arn)
        dep = new_deployment(service, td_arn)
        breaker = breaker_of(service)
        sd_arn = (
            f"{arn_prefix(service)}:service-deployment/{service.cluster_name}/"
            f"{service.name}/{service_deployment_id()}"
        )
        rec = {
            "serviceDeploymentArn": sd_arn,
            "serviceArn": service.arn,
            "clusterArn": service.cluster_arn,
            "createdAt": now,
            "startedAt": None,
            "finishedAt": None,
            "stoppedAt": None,
            "updatedAt": now,
            "status": "PENDING",
            "statusReason": None,
            "deploymentConfiguration": copy.deepcopy(service.deployment_configuration),  # type: ignore[attr-defined]
            "rollback": None,
            "_target": rev,
            "_sources": sources,
            "_breaker": "MONITORING" if breaker.get("enable") else "DISABLED",
            "_failures": 0,
            "_desired": service.desired_count or 0,
        }
        st.sds.append(rec)
        st.deps[dep["id"]] = {"tick": 0, "sd": rec, "rev": rev, "rollback": False}
        service.deployments.insert(0, dep)
        service.task_definition = td_arn
        service.current_service_deployment = sd_arn  # type: ignore[attr-defined]

    def finish_success(service: Service, primary: dict[str, Any], dst: dict[str, Any]) -> None:
        st = service._gantry_state  # type: ignore[attr-defined]
        now = utcnow()
        desired = primary["desiredCount"]
        primary.update(runningCount=desired, pendingCount=0, rolloutState="COMPLETED")
        primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
        for d in service.deployments[1:]:
            st.deps.pop(d.get("id"), None)
        del service.deployments[1:]
        rec = dst["sd"]
        rec.update(finishedAt=now, updatedAt=now)
        if dst["rollback"]:
            rec["status"] = "ROLLBACK_SUCCESSFUL"
        else:
            rec["status"] = "SUCCESSFUL"
            if rec["_breaker"] == "MONITORING":
                rec["_breaker"] = "MONITORING_COMPLETE"
        st.last_completed = (primary["id"], dst["rev"], primary["taskDefinition"])
        event(service, f"(service {service.name}) (deployment {primary['id']}) deployment completed.")
        event(service, f"(service {service.name}) has reached a steady state.")

    def step_complete(service: Service, primary: dict[str, Any], dst: dict[str, Any]) -> None:
        desired = primary["desiredCount"]
        tick = dst["tick"]
        if tick == 1:
            primary.update(pendingCount=desired, runningCount=0)
            if desired:
                event(service, f"(service {service.name}) has started {desired} tasks: {task_ids(desired)}.")
        elif tick == 2:
            running = math.ceil(desired / 2)
            primary.update(runningCount=running, pendingCount=desired - running)
        elif tick == 3:
            primary.update(runningCount=desired, pendingCount=0)
            stopped = 0
            for d in service.deployments[1:]:
                stopped += d.get("runningCount") or 0
                d.update(runningCount=0, pendingCount=0, desiredCount=0, updatedAt=utcnow())
            if stopped:
                event(service, f"(service {service.name}) has stopped {stopped} running tasks: {task_ids(stopped)}.")
        else:
            finish_success(service, primary, dst)

    def step_fail(backend: EC2ContainerServiceBackend, service: Service, primary: dict[str, Any], dst: dict[str, Any]) -> None:
        st = service._gantry_state  # type: ignore[attr-defined]
        desired = primary["desiredCount"]
        tick = dst["tick"]
        rec = dst["sd"]
        if tick == 1:
            primary.update(pendingCount=desired, runningCount=0)
            if desired:
                event(service, f"(service {service.name}) has started {desired} tasks: {task_ids(desired)}.")
            return
        if tick == 2:
            failed = max(desired, 1)
            primary.update(pendingCount=0, runningCount=0)
            primary["failedTasks"] = (primary.get("failedTasks") or 0) + failed
            rec["_failures"] += failed
            return
        breaker = breaker_of(service)
        if not breaker.get("enable"):
            # Without the circuit breaker ECS keeps launching replacement tasks.
            dst["tick"] = 0
            return
        now = utcnow()
        primary.update(rolloutState="FAILED", rolloutStateReason=ECS_CIRCUIT_BREAKER_REASON)
        rec.update(statusReason=ECS_CIRCUIT_BREAKER_REASON, updatedAt=now, _breaker="TRIGGERED")
        event(service, f"(service {service.name}) (deployment {primary['id']}) deployment failed: tasks failed to start.")
        target = st.last_completed
        if breaker.get("rollback") and target is not None:
            target_id, target_rev, target_td = target
            primary["status"] = "ACTIVE"
            rb = new_deployment(
                service,
                target_td,
                reason=f"ECS deployment circuit breaker: rolling back to deploymentId {target_id}.",
            )
            st.deps[rb["id"]] = {"tick": 0, "sd": rec, "rev": target_rev, "rollback": True}
            service.deployments.insert(0, rb)
            service.task_definition = target_td
            rec["status"] = "ROLLBACK_IN_PROGRESS"
            rec["rollback"] = {
                "reason": ECS_CIRCUIT_BREAKER_REASON,
                "startedAt": now,
                "serviceRevisionArn": target_rev,
            }
            event(service, f"(service {service.name}) rolling back to deployment {target_id}.")
        else:
            rec.update(status="STOPPED", stoppedAt=now, finishedAt=now)

    def advance(backend: EC2ContainerServiceBackend, service: Service) -> None:
        """One poll's worth of progress for the service's PRIMARY deployment."""
        st = service._gantry_state  # type: ignore[attr-defined]
        if st is None or service.status != "ACTIVE" or not service.deployments:
            return
        primary = service.deployments[0]
        dst = st.deps.get(primary.get("id"))
        if primary.get("status") != "PRIMARY" or dst is None:
            return
        now = utcnow()
        primary["desiredCount"] = service.desired_count
        state = primary.get("rolloutState")
        if state == "IN_PROGRESS":
            rec = dst["sd"]
            if rec["status"] == "PENDING":
                rec.update(status="IN_PROGRESS", startedAt=now)
            behaviour = "complete" if dst["rollback"] else behaviour_of(service)
            if behaviour == "hang":
                dst["tick"] = 1  # re-tagging 'complete' later resumes from here
                primary.update(pendingCount=primary["desiredCount"], runningCount=0)
                if not dst.get("started") and primary["desiredCount"]:
                    event(
                        service,
                        f"(service {service.name}) has started {primary['desiredCount']} tasks: "
                        f"{task_ids(primary['desiredCount'])}.",
                    )
                dst["started"] = True
            else:
                dst["tick"] += 1
                dst["started"] = True
                if behaviour == "fail":
                    step_fail(backend, service, primary, dst)
                else:
                    step_complete(service, primary, dst)
            primary["updatedAt"] = now
            rec["updatedAt"] = now
        elif state == "COMPLETED":
            desired = primary["desiredCount"]
            running = primary.get("runningCount") or 0
            if running != desired or primary.get("pendingCount"):
                if desired > running:
                    event(service, f"(service {service.name}) has started {desired - running} tasks: {task_ids(desired - running)}.")
                else:
                    event(service, f"(service {service.name}) has stopped {running - desired} running tasks: {task_ids(running - desired)}.")
                primary.update(runningCount=desired, pendingCount=0, updatedAt=now)
                event(service, f"(service {service.name}) has reached a steady state.")
        set_counts(backend, service)

    def manage(backend: EC2ContainerServiceBackend, service: Service) -> None:
        if service._gantry_state is not None:  # type: ignore[attr-defined]
            return
        service._gantry_state = ServiceState()  # type: ignore[attr-defined]
        if service.deployment_configuration is None:  # type: ignore[attr-defined]
            service.deployment_configuration = merged_configuration(None, None)  # type: ignore[attr-defined]

    # ---- backend
    def create_service(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> Service:
        bound = inspect.signature(original_create_service).bind(self, *args, **kwargs)
        _ecs_check_behaviour(_ecs_tag_value(bound.arguments.get("tags"), ECS_BEHAVIOUR_TAG))
        with _ECS_LOCK:
            service = original_create_service(self, *args, **kwargs)
            service.created_at = utcnow()  # type: ignore[attr-defined]
            if (service.deployment_controller or {}).get("type", "ECS") != "ECS":
                return service
            manage(self, service)
            service.deployments = []
            start_deployment(self, service, service.task_definition)
            set_counts(self, service)
            return service

    def update_service(self: EC2ContainerServiceBackend, service_properties: dict[str, Any]) -> Service:
        props = dict(service_properties)
        cluster_str = props.get("cluster") or "default"
        props["cluster"] = cluster_str
        service_str = props.get("service") or ""
        with _ECS_LOCK:
            service = self._get_service(cluster_str, service_str.split("/")[-1])
            if service._gantry_state is None:  # type: ignore[attr-defined]
                return original_update_service(self, service_properties)
            td_str = props.pop("task_definition", None)
            force = bool(props.pop("force_new_deployment", False))
            desired = props.pop("desired_count", None)
            requested_conf = props.pop("deployment_configuration", None)
            network = props.pop("network_configuration", None)
            connect = props.pop("service_connect_configuration", None)
            registries = props.pop("service_registries", None)
            td_arn = self.describe_task_definition(td_str).arn if td_str else None
            if network is not None:
                network = service._validate_network(network)
            platform_before = service.platform_version
            # moto sets the remaining properties and takes the service's tasks off the
            # cluster's counts; put them back (set_counts applies the changes).
            original_update_service(self, props)
            cluster = self.clusters.get(service.cluster_name)
            if cluster is not None:
                cluster.running_tasks_count += service.running_count or 0
                cluster.pending_tasks_count += service.pending_count or 0
            if requested_conf is not None:
                service.deployment_configuration = merged_configuration(  # type: ignore[attr-defined]
                    service.deployment_configuration, requested_conf  # type: ignore[attr-defined]
                )
            if desired is not None:
                service.desired_count = int(desired)
            changed = force
            if td_arn is not None and td_arn != service.task_definition:
                changed = True
            if network is not None and network != service.network_configuration:
                service.network_configuration = network
                changed = True
            if service.platform_version != platform_before:
                changed = True
            if connect is not None:
                connect = connect_as_reported(connect)
                if connect != getattr(service, "_gantry_connect", None):
                    service._gantry_connect = connect  # type: ignore[attr-defined]
                    changed = True
            if registries is not None and registries != service.service_registries:
                service.service_registries = registries
                changed = True
            if changed:
                start_deployment(self, service, td_arn or service.task_definition)
            elif service.deployments:
                service.deployments[0]["desiredCount"] = service.desired_count
                service.deployments[0]["updatedAt"] = utcnow()
            set_counts(self, service)
            return service

    def tag_resource(self: EC2ContainerServiceBackend, arn: str, tags: dict[str, str]) -> None:
        if ECS_BEHAVIOUR_TAG in (tags or {}):
            _ecs_check_behaviour(tags[ECS_BEHAVIOUR_TAG])
        return original_tag_resource(self, arn, tags)

    EC2ContainerServiceBackend.create_service = create_service  # type: ignore[method-assign]
    EC2ContainerServiceBackend.update_service = update_service  # type: ignore[method-assign]
    EC2ContainerServiceBackend.tag_resource = tag_resource  # type: ignore[method-assign]

    # ---- views
    def deployment_view(service: Service, rec: dict[str, Any]) -> dict[str, Any]:
        breaker = {"status": rec["_breaker"], "failureCount": rec["_failures"]}
        if rec["_breaker"] != "DISABLED":
            # ECS: half the desired count, at least 3, at most 200.
            breaker["threshold"] = min(200, max(3, math.ceil(rec["_desired"] * 0.5)))
        view = {
            key: value
            for key, value in rec.items()
            if not key.startswith("_") and value is not None
        }
        view["sourceServiceRevisions"] = [revision_summary(service, arn) for arn in rec["_sources"]]
        view["targetServiceRevision"] = revision_summary(service, rec["_target"])
        view["deploymentCircuitBreaker"] = breaker
        view["alarms"] = {"status": "DISABLED"}
        return view

    def brief_view(rec: dict[str, Any]) -> dict[str, Any]:
        keys = ("serviceDeploymentArn", "serviceArn", "clusterArn", "startedAt", "createdAt",
                "finishedAt", "status", "statusReason")
        view = {key: rec[key] for key in keys if rec.get(key) is not None}
        view["targetServiceRevisionArn"] = rec["_target"]
        return view

    def find_records(backend: EC2ContainerServiceBackend, arns: list[str], kind: str) -> tuple[dict[str, tuple[Service, dict[str, Any]]], list[Service]]:
        found: dict[str, tuple[Service, dict[str, Any]]] = {}
        owners: list[Service] = []
        wanted = set(arns)
        for service in list(backend.services.values()):
            st = service._gantry_state  # type: ignore[attr-defined]
            if st is None:
                continue
            records = st.sds if kind == "deployment" else list(st.revisions.values())
            key = "serviceDeploymentArn" if kind == "deployment" else "serviceRevisionArn"
            for rec in records:
                if rec[key] in wanted:
                    found[rec[key]] = (service, rec)
                    if service not in owners:
                        owners.append(service)
        return found, owners

    # ---- responses
    def r_create_service(self: EC2ContainerServiceResponse) -> ActionResult:
        result = original_r_create_service(self)
        service = result.result["service"]  # type: ignore[index]
        # Set the way moto's UpdateService sets any property (snake_case attributes).
        for key, attr in (
            ("healthCheckGracePeriodSeconds", "health_check_grace_period_seconds"),
            ("enableExecuteCommand", "enable_execute_command"),
            ("capacityProviderStrategy", "capacity_provider_strategy"),
        ):
            value = self._get_param(key)
            if value is not None:
                with _ECS_LOCK:
                    setattr(service, attr, value)
        connect = connect_as_reported(self._get_param("serviceConnectConfiguration"))
        if connect is not None:
            with _ECS_LOCK:
                service._gantry_connect = connect
                for dep in service.deployments:
                    if dep.get("status") == "PRIMARY":
                        dep["serviceConnectConfiguration"] = copy.deepcopy(connect)
        requested = self._get_param("deploymentConfiguration")
        if service._gantry_state is not None and requested is not None:
            with _ECS_LOCK:
                service.deployment_configuration = merged_configuration(None, requested)
                breaker = breaker_of(service)
                for rec in service._gantry_state.sds:
                    rec["deploymentConfiguration"] = copy.deepcopy(service.deployment_configuration)
                    rec["_breaker"] = "MONITORING" if breaker.get("enable") else "DISABLED"
        return result

    def r_describe_services(self: EC2ContainerServiceResponse) -> ActionResult:
        result = original_r_describe_services(self)
        with _ECS_LOCK:
            for service in result.result.get("services") or []:  # type: ignore[union-attr]
                advance(self.ecs_backend, service)
        return result

    def r_list_service_deployments(self: EC2ContainerServiceResponse) -> ActionResult:
        backend = self.ecs_backend
        cluster_str = self._get_param("cluster") or "default"
        service_str = self._get_param("service") or ""
        statuses = self._get_param("status") or []
        created = self._get_param("createdAt") or {}
        max_results = self._get_int_param("maxResults") or 20
        token = self._get_param("nextToken")
        with _ECS_LOCK:
            try:
                service = backend._get_service(cluster_str, service_str)
            except ServiceNotFoundException:
                service = backend._get_service(cluster_str, service_str.split("/")[-1])
            advance(backend, service)
            st = service._gantry_state  # type: ignore[attr-defined]
            records = list(reversed(st.sds)) if st is not None else []
            if statuses:
                records = [r for r in records if r["status"] in statuses]
            if created.get("after") is not None:
                records = [r for r in records if r["createdAt"] >= created["after"]]
            if created.get("before") is not None:
                records = [r for r in records if r["createdAt"] <= created["before"]]
            start = int(token) if token and str(token).isdigit() else 0
            page = records[start : start + max_results]
            next_token = str(start + max_results) if start + max_results < len(records) else None
            briefs = [brief_view(r) for r in page]
        return ActionResult({"serviceDeployments": briefs, "nextToken": next_token})

    def r_describe_service_deployments(self: EC2ContainerServiceResponse) -> ActionResult:
        backend = self.ecs_backend
        arns = self._get_param("serviceDeploymentArns") or []
        with _ECS_LOCK:
            found, owners = find_records(backend, arns, "deployment")
            for service in owners:
                advance(backend, service)
            views = [deployment_view(*found[a]) for a in arns if a in found]
        failures = [{"arn": a, "reason": "MISSING"} for a in arns if a not in found]
        return ActionResult({"serviceDeployments": views, "failures": failures})

    def r_describe_service_revisions(self: EC2ContainerServiceResponse) -> ActionResult:
        backend = self.ecs_backend
        arns = self._get_param("serviceRevisionArns") or []
        with _ECS_LOCK:
            found, _ = find_records(backend, arns, "revision")
            views = [
                {k: v for k, v in found[a][1].items() if v is not None} for a in arns if a in found
            ]
        failures = [{"arn": a, "reason": "MISSING"} for a in arns if a not in found]
        return ActionResult({"serviceRevisions": views, "failures": failures})

    EC2ContainerServiceResponse.create_service = r_create_service  # type: ignore[method-assign]
    EC2ContainerServiceResponse.describe_services = r_describe_services  # type: ignore[method-assign]
    EC2ContainerServiceResponse.list_service_deployments = r_list_service_deployments  # type: ignore[attr-defined]
    EC2ContainerServiceResponse.describe_service_deployments = r_describe_service_deployments  # type: ignore[attr-defined]
    EC2ContainerServiceResponse.describe_service_revisions = r_describe_service_revisions  # type: ignore[attr-defined]


@patch("ecs-run-task-lifecycle")
def _ecs_run_task_lifecycle() -> None:
    from moto.core.utils import utcnow
    from moto.ecs.exceptions import InvalidParameterException
    from moto.ecs.models import EC2ContainerServiceBackend, Task

    _require(EC2ContainerServiceBackend, "run_task", "describe_tasks", "stop_task", "describe_task_definition")
    _require(Task, "last_status", "task_arn")
    original_run_task = EC2ContainerServiceBackend.run_task
    original_describe_tasks = EC2ContainerServiceBackend.describe_tasks
    original_stop_task = EC2ContainerServiceBackend.stop_task
    signature = inspect.signature(original_run_task)
    for parameter in ("task_definition_str", "overrides"):
        if parameter not in signature.parameters:
            _require(original_run_task, f"{parameter} (parameter)")

    Task._gantry_task = None  # type: ignore[attr-defined]

    def exit_code_for(td: Any, overrides: Any) -> str:
        for override in (overrides or {}).get("containerOverrides") or []:
            for pair in override.get("environment") or []:
                if pair.get("name") == ECS_EXIT_CODE_ENV:
                    return str(pair.get("value"))
        for container in td.container_definitions:
            for pair in container.get("environment") or []:
                if pair.get("name") == ECS_EXIT_CODE_ENV:
                    return str(pair.get("value"))
        tagged = _ecs_tag_value(td.tags, ECS_EXIT_CODE_TAG)
        return "0" if tagged is None else str(tagged)

    @functools.wraps(original_run_task)
    def run_task(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        td = self.describe_task_definition(bound.arguments["task_definition_str"])
        code = exit_code_for(td, bound.arguments.get("overrides")).strip()
        if code != "hang":
            try:
                int(code)
            except ValueError:
                raise InvalidParameterException(
                    f"gantry moto launcher: {ECS_EXIT_CODE_ENV}/{ECS_EXIT_CODE_TAG} must be an "
                    f"integer or 'hang', got {code!r}"
                )
        tasks = original_run_task(*bound.args, **bound.kwargs)
        now = utcnow()
        with _ECS_LOCK:
            for task in tasks:
                if not hasattr(task, "_transitions") or not hasattr(task, "containers"):
                    raise RuntimeError(
                        "[moto-launcher] moto internals changed: ECS Task has no "
                        "_transitions/containers; update tests/support/moto_launcher.py"
                    )
                # Freeze moto's own ManagedState progression; the launcher drives lastStatus.
                task._transitions = []
                task.last_status = "PROVISIONING"
                task.desired_status = "RUNNING"
                task.stopped_reason = None  # moto says "" (ECS omits it until the task stops)
                task.created_at = now
                task.cpu = td.cpu
                task.memory = td.memory
                task._gantry_task = {"polls": 0, "exit": code, "done": False}  # type: ignore[attr-defined]
                for container in task.containers:
                    container.last_status = "PENDING"
                    container.exitCode = None
        return tasks

    def describe_tasks(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> Any:
        tasks = original_describe_tasks(self, *args, **kwargs)
        with _ECS_LOCK:
            for task in tasks:
                info = task._gantry_task
                if info is None or info["done"]:
                    continue
                info["polls"] += 1
                now = utcnow()
                if info["polls"] == 1 or info["exit"] == "hang":
                    if task.last_status != "RUNNING":
                        task.last_status = "RUNNING"
                        task.pull_started_at = task.pull_stopped_at = task.started_at = now
                        task.connectivity = "CONNECTED"
                        task.connectivity_at = now
                        for container in task.containers:
                            container.last_status = "RUNNING"
                    continue
                info["done"] = True
                task.last_status = "STOPPED"
                task.desired_status = "STOPPED"
                task.stop_code = "EssentialContainerExited"
                task.stopped_reason = "Essential container in task exited"
                task.stopping_at = task.execution_stopped_at = task.stopped_at = now
                for container in task.containers:
                    container.last_status = "STOPPED"
                    container.exitCode = int(info["exit"])
        return tasks

    def stop_task(self: EC2ContainerServiceBackend, cluster_str: str, task_str: str, reason: str) -> Any:
        with _ECS_LOCK:
            task = original_stop_task(self, cluster_str, task_str, reason)
            info = task._gantry_task
            if info is not None and not info["done"]:
                info["done"] = True
                now = utcnow()
                task.stop_code = "UserInitiated"
                task.stopped_reason = reason or "Task stopped by user"
                task.stopping_at = task.execution_stopped_at = task.stopped_at = now
                for container in task.containers:
                    container.last_status = "STOPPED"
                    container.exitCode = 137  # killed
            return task

    EC2ContainerServiceBackend.run_task = run_task  # type: ignore[method-assign]
    EC2ContainerServiceBackend.describe_tasks = describe_tasks  # type: ignore[method-assign]
    EC2ContainerServiceBackend.stop_task = stop_task  # type: ignore[method-assign]


# --------------------------------------------------------------------------- server


def apply_patches() -> list[str]:
    """Apply every registered patch once; returns the names applied."""
    if APPLIED:
        return APPLIED
    for name, fn in _PATCHES:
        fn()
        APPLIED.append(name)
    return APPLIED


def _moto_version() -> str:
    try:
        from importlib.metadata import version

        return version("moto")
    except Exception:  # noqa: BLE001 - best effort, only for the health answer
        return "unknown"


def _install_health_endpoint() -> None:
    """Answer GET /gantry-launcher/health in front of moto's dispatcher.

    moto.server.main() builds ``DomainDispatcherApplication(create_backend_app)``
    by looking the class up in moto.server's globals at call time, so a subclass
    put there before main() runs wraps the whole app (and keeps moto's request
    handler, hence its request log).
    """
    import moto.server
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    _require(moto.server, "DomainDispatcherApplication", "main")

    body = json.dumps(
        {
            "launcher": LAUNCHER_NAME,
            "moto": _moto_version(),
            "patches": list(APPLIED),
            "pid": os.getpid(),
        }
    ).encode()

    class GantryDispatcher(DomainDispatcherApplication):
        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") == HEALTH_PATH and environ.get(
                "REQUEST_METHOD"
            ) in ("GET", "HEAD"):
                start_response(
                    "200 OK",
                    [
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(body))),
                    ],
                )
                return [body] if environ["REQUEST_METHOD"] == "GET" else [b""]
            return super().__call__(environ, start_response)

    moto.server.DomainDispatcherApplication = GantryDispatcher  # type: ignore[misc]


def main(argv: list[str] | None = None) -> None:
    """Patch moto, then run moto's own server CLI with the given arguments."""
    args = sys.argv[1:] if argv is None else argv
    found = _moto_version()
    if found != TESTED_MOTO_VERSION:
        _log(f"warning: patches were written for moto {TESTED_MOTO_VERSION}, found {found}")
    applied = apply_patches()
    _install_health_endpoint()
    _log(f"moto {found}, patches: {', '.join(applied)}; health at {HEALTH_PATH}")

    from moto.server import main as moto_main

    moto_main(args)


if __name__ == "__main__":
    main()
