"""The GraphQL endpoint MLflow's web UI queries (``POST /graphql``), over the same stores as REST.

The schema holds exactly the types of MLflow 3.17.2's GraphQL schema that its UI asks for
(run page, metric charts, runs search, artifact listing, model versions, datasets). Each resolver
calls the REST handler for the same thing and renames the keys to camelCase, so both faces answer
from one code path. As in MLflow, a store error does not fail the query: the field answers
``apiError {code, message}`` and its other fields are null.
"""

from __future__ import annotations

import math
import re
from typing import Any

from graphql import GraphQLError, build_schema, graphql_sync

from trackops.errors import StoreError
from trackops.server.protocol import Params

SDL = """
directive @component(name: String!) on QUERY | MUTATION
scalar LongString

type Query {
  mlflowGetExperiment(input: MlflowGetExperimentInput): MlflowGetExperimentResponse
  mlflowGetMetricHistoryBulkInterval(input: MlflowGetMetricHistoryBulkIntervalInput): MlflowGetMetricHistoryBulkIntervalResponse
  mlflowGetRun(input: MlflowGetRunInput): MlflowGetRunResponse
  mlflowListArtifacts(input: MlflowListArtifactsInput): MlflowListArtifactsResponse
  mlflowSearchModelVersions(input: MlflowSearchModelVersionsInput): MlflowSearchModelVersionsResponse
  mlflowSearchRuns(input: MlflowSearchRunsInput): MlflowSearchRunsResponse
}
type Mutation {
  mlflowSearchDatasets(input: MlflowSearchDatasetsInput): MlflowSearchDatasetsResponse
  mlflowSearchRuns(input: MlflowSearchRunsInput): MlflowSearchRunsResponse
}
type ApiError { code: String message: String helpUrl: String traceId: String errorDetails: [ErrorDetail] }
type ErrorDetail { field: String message: String }
type MlflowExperimentTag { key: String value: String }
type MlflowParam { key: String value: String }
type MlflowRunTag { key: String value: String }
type MlflowInputTag { key: String value: String }
type MlflowModelVersionTag { key: String value: String }
type MlflowExperiment {
  experimentId: String name: String artifactLocation: String lifecycleStage: String
  lastUpdateTime: LongString creationTime: LongString tags: [MlflowExperimentTag!]
  effectiveTraceArchivalRetention: String workspace: String
}
type MlflowGetExperimentResponse { experiment: MlflowExperiment apiError: ApiError }
input MlflowGetExperimentInput { experimentId: String }
type MlflowMetricWithRunId { key: String value: Float timestamp: LongString step: LongString runId: String }
type MlflowMetricExtension {
  key: String value: Float timestamp: LongString step: LongString datasetName: String
  datasetDigest: String modelId: String runId: String
}
type MlflowModelMetric {
  key: String value: Float timestamp: LongString step: LongString datasetName: String
  datasetDigest: String modelId: String runId: String
}
type MlflowGetMetricHistoryBulkIntervalResponse { metrics: [MlflowMetricWithRunId!] apiError: ApiError }
input MlflowGetMetricHistoryBulkIntervalInput {
  runIds: [String] metricKey: String startStep: Int endStep: Int maxResults: Int
}
enum MlflowRunStatus { RUNNING SCHEDULED FINISHED FAILED KILLED }
type MlflowRunInfo {
  runId: String runUuid: String runName: String experimentId: String userId: String
  status: MlflowRunStatus startTime: LongString endTime: LongString artifactUri: String lifecycleStage: String
}
type MlflowRunData { metrics: [MlflowMetricExtension!] params: [MlflowParam!] tags: [MlflowRunTag!] }
type MlflowDataset { name: String digest: String sourceType: String source: String schema: String profile: String }
type MlflowDatasetInput { tags: [MlflowInputTag!] dataset: MlflowDataset }
type MlflowModelInput { modelId: String }
type MlflowRunInputs { datasetInputs: [MlflowDatasetInput!] modelInputs: [MlflowModelInput!] }
type MlflowModelOutput { modelId: String step: LongString }
type MlflowRunOutputs { modelOutputs: [MlflowModelOutput!] }
enum MlflowModelVersionStatus { PENDING_REGISTRATION FAILED_REGISTRATION READY }
type MlflowModelParam { name: String value: String }
type MlflowModelVersion {
  name: String version: String creationTimestamp: LongString lastUpdatedTimestamp: LongString
  userId: String currentStage: String description: String source: String runId: String
  status: MlflowModelVersionStatus statusMessage: String tags: [MlflowModelVersionTag!] runLink: String
  aliases: [String] modelId: String modelParams: [MlflowModelParam!] modelMetrics: [MlflowModelMetric!]
}
type MlflowRunExtension {
  info: MlflowRunInfo data: MlflowRunData inputs: MlflowRunInputs outputs: MlflowRunOutputs
  experiment: MlflowExperiment modelVersions: [MlflowModelVersion!]
}
type MlflowGetRunResponse { run: MlflowRunExtension apiError: ApiError }
input MlflowGetRunInput { runId: String runUuid: String }
type MlflowFileInfo { path: String isDir: Boolean fileSize: LongString }
type MlflowListArtifactsResponse { rootUri: String files: [MlflowFileInfo!] nextPageToken: String apiError: ApiError }
input MlflowListArtifactsInput { runId: String runUuid: String path: String pageToken: String }
type MlflowSearchModelVersionsResponse { modelVersions: [MlflowModelVersion!] nextPageToken: String apiError: ApiError }
input MlflowSearchModelVersionsInput { filter: String maxResults: LongString orderBy: [String] pageToken: String }
enum MlflowViewType { ACTIVE_ONLY DELETED_ONLY ALL }
type MlflowSearchRunsResponse { runs: [MlflowRunExtension!] nextPageToken: String apiError: ApiError }
input MlflowSearchRunsInput {
  experimentIds: [String] filter: String runViewType: MlflowViewType maxResults: Int orderBy: [String] pageToken: String
}
type MlflowDatasetSummary { experimentId: String name: String digest: String context: String }
type MlflowSearchDatasetsResponse { datasetSummaries: [MlflowDatasetSummary!] apiError: ApiError }
input MlflowSearchDatasetsInput { experimentIds: [String] }
"""

MAX_FLOAT = 1.7976931348623157e308


def _camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _snake(value: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): v for k, v in (value or {}).items()
            if v is not None}


def _float(value: Any) -> float | None:
    """NaN is null in MLflow's GraphQL (a Float cannot be NaN); infinities as MLflow stores them."""
    if value in ("Infinity", "-Infinity"):
        return MAX_FLOAT if value == "Infinity" else -MAX_FLOAT
    if value == "NaN" or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _fix_metrics(metrics: list[dict]) -> list[dict]:
    return [{**m, "value": _float(m.get("value"))} for m in metrics]


def _route_of(handler):
    """The REST route a handler serves (its access and resource are what the guard checks)."""
    return next(r for r in handler.__globals__["ROUTES"] if r.handler is handler)


class Resolvers:
    """One object per request: the context, and the REST handlers each field answers with."""

    def __init__(self, ctx):
        self.ctx = ctx

    def _authorize(self, handler, params: Params) -> None:
        """With --auth, each field is checked as the REST route of its handler would be: a user
        without READ on a run's experiment gets ``apiError {code: PERMISSION_DENIED}``, not the run."""
        if self.ctx.auth is None:
            return
        from trackops.server.auth import current_user

        user = current_user.get()
        if user is None or user.is_admin:
            return
        route = _route_of(handler)
        self.ctx.auth.guard.authorize(user, route.access.name, route.resource.name, params, {},
                                      endpoint=f"{route.method} {route.path}")

    def _call(self, handler, params: dict[str, Any], result_key: str | None = None):
        try:
            self._authorize(handler, Params(params))
            return handler(self.ctx, Params(params), {})
        except StoreError as exc:
            return {"apiError": {"code": exc.error_code, "message": exc.message}}

    def _run(self, run: dict) -> dict:
        from trackops.server.handlers import registry, tracking

        # Empty lists are left out on REST; GraphQL answers them as [] (as MLflow's proto resolvers do).
        out = _camel(run)
        data = out.setdefault("data", {})
        data["metrics"] = _fix_metrics(data.get("metrics", []))
        for part, names in (("data", ("params", "tags")), ("inputs", ("datasetInputs", "modelInputs")),
                            ("outputs", ("modelOutputs",))):
            for name in names:
                out.setdefault(part, {}).setdefault(name, [])
        exp_id = run["info"]["experiment_id"]
        found = self._call(tracking.get_experiment, {"experiment_id": exp_id})
        experiment = _camel(found.get("experiment"))
        if experiment is not None:
            experiment.setdefault("tags", [])
        out["experiment"] = experiment
        if self.ctx.registry is not None:
            versions = self._call(registry.search_model_versions,
                                  {"filter": f"run_id='{run['info']['run_id']}'"})
            out["modelVersions"] = _camel(versions.get("model_versions", []))
        return out

    def get_run(self, _root, _info, input=None):  # noqa: A002 - the schema's argument name
        from trackops.server.handlers import tracking

        found = self._call(tracking.get_run, _snake(input))
        if "apiError" in found:
            return found
        return {"run": self._run(found["run"])}

    def search_runs(self, _root, _info, input=None):  # noqa: A002
        from trackops.server.handlers import tracking

        found = self._call(tracking.search_runs, _snake(input))
        if "apiError" in found:
            return found
        return {"runs": [self._run(r) for r in found.get("runs", [])], "nextPageToken": found.get("next_page_token")}

    def get_experiment(self, _root, _info, input=None):  # noqa: A002
        from trackops.server.handlers import tracking

        found = _camel(self._call(tracking.get_experiment, _snake(input)))
        if found.get("experiment") is not None:  # [] as MLflow answers; the UI calls tags.find() on it
            found["experiment"].setdefault("tags", [])
        return found

    def bulk_interval(self, _root, _info, input=None):  # noqa: A002
        from trackops.server.handlers import tracking

        found = _camel(self._call(tracking.get_metric_history_bulk_interval, _snake(input)))
        if "metrics" in found:
            found["metrics"] = _fix_metrics(found["metrics"])
        return found

    def list_artifacts(self, _root, _info, input=None):  # noqa: A002
        from trackops.server.handlers import artifacts

        return _camel(self._call(artifacts.list_run_artifacts, _snake(input)))

    def search_model_versions(self, _root, _info, input=None):  # noqa: A002
        from trackops.server.handlers import registry

        if self.ctx.registry is None:
            return {}
        return _camel(self._call(registry.search_model_versions, _snake(input)))

    def search_datasets(self, _root, _info, input=None):  # noqa: A002
        from trackops.server.handlers import ui_support

        return _camel(self._call(ui_support.search_datasets, _snake(input)))


SCHEMA = build_schema(SDL)
SCHEMA.type_map["LongString"].serialize = lambda value: str(value)  # int64 as text: JS numbers are 53-bit
SCHEMA.type_map["LongString"].parse_value = lambda value: int(value)

FIELDS = {"mlflowGetRun": "get_run", "mlflowSearchRuns": "search_runs", "mlflowGetExperiment": "get_experiment",
          "mlflowGetMetricHistoryBulkInterval": "bulk_interval", "mlflowListArtifacts": "list_artifacts",
          "mlflowSearchModelVersions": "search_model_versions", "mlflowSearchDatasets": "search_datasets"}


class _Root:
    """The root value: top-level fields resolve to the request's `Resolvers` methods."""

    def __init__(self, resolvers: Resolvers):
        self._resolvers = resolvers

    def __getattr__(self, name: str):
        method = FIELDS.get(name)
        if method is None:
            raise AttributeError(name)
        return lambda info, **kwargs: getattr(self._resolvers, method)(None, info, **kwargs)


def execute(ctx, query: str, variables: dict[str, Any] | None, operation: str | None) -> dict[str, Any]:
    """Run one GraphQL request: ``{"data": ..., "errors": null}``, or the errors of an invalid query."""
    result = graphql_sync(SCHEMA, query, root_value=_Root(Resolvers(ctx)), variable_values=variables,
                          operation_name=operation)
    errors = [{"message": e.message} for e in result.errors or () if isinstance(e, GraphQLError)]
    return {"data": result.data, "errors": errors or None}  # MLflow always sends "errors"
