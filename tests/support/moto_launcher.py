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
import json
import os
import sys
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
