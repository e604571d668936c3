"""The object engine: every namespaced resource type, Velero-style snapshots, ordered restore.

This package holds the pure parts (rules, sanitising, the archive format, restore order);
see docs/object-rules.md for the rules they implement.
"""

from reconciler.engines.objects._archive import (
    ArchivedObject,
    ArchiveError,
    member_path,
    read_archive,
    resource_list,
    write_archive,
)
from reconciler.engines.objects._order import (
    ORDERED_TIERS,
    base_tier,
    is_custom,
    restore_tiers,
)
from reconciler.engines.objects._rules import (
    BUILTIN_GROUPS,
    NEVER_BACKED_UP_TYPES,
    RECREATED_BY,
    ResourceType,
    api_group,
    controller_reference,
    matches,
    never_backed_up,
    owner_references,
    partition,
    resource_selected,
    restore_skip_reason,
    selector_service_names,
    skip_reason,
)
from reconciler.engines.objects._sanitize import (
    JOB_LABEL,
    PRESERVE_NODE_PORTS_ANNOTATION,
    SNAPSHOT_LABEL,
    is_subset,
    label_value,
    portable,
    relink_owners,
    sanitize_for_restore,
)

__all__ = [
    "BUILTIN_GROUPS",
    "JOB_LABEL",
    "NEVER_BACKED_UP_TYPES",
    "ORDERED_TIERS",
    "PRESERVE_NODE_PORTS_ANNOTATION",
    "RECREATED_BY",
    "SNAPSHOT_LABEL",
    "ArchiveError",
    "ArchivedObject",
    "ResourceType",
    "api_group",
    "base_tier",
    "controller_reference",
    "is_custom",
    "is_subset",
    "label_value",
    "matches",
    "member_path",
    "never_backed_up",
    "owner_references",
    "partition",
    "portable",
    "read_archive",
    "relink_owners",
    "resource_list",
    "resource_selected",
    "restore_skip_reason",
    "restore_tiers",
    "sanitize_for_restore",
    "selector_service_names",
    "skip_reason",
    "write_archive",
]
