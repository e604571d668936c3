"""KubeSlice interop: onboarding replicated namespaces into application slices."""

from reconciler.kubeslice._import import (
    ProjectObjects,
    build_inventory,
    parse_storage_class_mapping,
    read_projects,
    render_inventory,
)
from reconciler.kubeslice._sliceconfig import (
    SLICE_CONFIG_API,
    SLICE_CONFIG_KIND,
    add_application_namespace,
    onboarded_clusters,
    project_namespace,
    remove_application_namespace,
    update_slice_config,
)

__all__ = [
    "SLICE_CONFIG_API",
    "SLICE_CONFIG_KIND",
    "ProjectObjects",
    "add_application_namespace",
    "build_inventory",
    "onboarded_clusters",
    "parse_storage_class_mapping",
    "project_namespace",
    "read_projects",
    "remove_application_namespace",
    "render_inventory",
    "update_slice_config",
]
