"""SelfSubjectAccessReview: may the current credentials do this?"""

from __future__ import annotations

from kubernetes import client as k8s_client
from kubernetes.client.rest import ApiException

from reconciler.kube._client import KubeClient
from reconciler.kube._errors import KubeApiError


def can_i(
    kube: KubeClient, verb: str, resource: str, group: str = "", namespace: str | None = None
) -> bool:
    """Ask the API server whether the client's identity may ``verb`` ``resource``."""
    api = k8s_client.AuthorizationV1Api(kube.api_client)
    review = k8s_client.V1SelfSubjectAccessReview(
        spec=k8s_client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s_client.V1ResourceAttributes(
                verb=verb, resource=resource, group=group, namespace=namespace
            )
        )
    )
    try:
        answer = api.create_self_subject_access_review(review, _request_timeout=15)
    except ApiException as error:
        raise KubeApiError(
            f"{kube.server}: access review for {verb} {resource} failed: HTTP {error.status}",
            status=int(error.status or 0),
        ) from None
    return bool(answer.status and answer.status.allowed)


def api_groups(kube: KubeClient) -> dict[str, str]:
    """API discovery: every group the server serves, with its preferred version ("" = core)."""
    try:
        groups = k8s_client.ApisApi(kube.api_client).get_api_versions(_request_timeout=15)
        core = k8s_client.CoreApi(kube.api_client).get_api_versions(_request_timeout=15)
    except ApiException as error:
        raise KubeApiError(
            f"{kube.server}: API discovery failed: HTTP {error.status}",
            status=int(error.status or 0),
        ) from None
    found = {"": core.versions[0] if core.versions else "v1"}
    for group in groups.groups or []:
        preferred = group.preferred_version or (group.versions or [None])[0]
        if preferred is not None:
            found[group.name] = preferred.version
    return found
