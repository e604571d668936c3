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
