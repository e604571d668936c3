"""The validated inventory: typed objects by kind and name, and digests of desired state."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from reconciler.errors import KubeferryError
from reconciler.inventory._models import (
    ApplicationSlice,
    Cluster,
    InventoryObject,
    ReplicationJob,
    ReplicationRepository,
    ReplicationSlice,
    canonical_json,
)

_Object = TypeVar("_Object", bound=InventoryObject)


@dataclass(frozen=True)
class Inventory:
    """A valid inventory (every reference resolves). Mappings are read-only, by name."""

    path: Path
    """The file or directory it was loaded from."""
    files: tuple[Path, ...]
    """The YAML files read, in order."""
    clusters: Mapping[str, Cluster]
    repositories: Mapping[str, ReplicationRepository]
    slices: Mapping[str, ReplicationSlice]
    jobs: Mapping[str, ReplicationJob]
    application_slices: Mapping[str, ApplicationSlice]

    @classmethod
    def from_objects(
        cls, path: Path, files: Iterable[Path], objects: Iterable[InventoryObject]
    ) -> Inventory:
        objects = list(objects)
        return cls(
            path=path,
            files=tuple(files),
            clusters=_by_name(objects, Cluster),
            repositories=_by_name(objects, ReplicationRepository),
            slices=_by_name(objects, ReplicationSlice),
            jobs=_by_name(objects, ReplicationJob),
            application_slices=_by_name(objects, ApplicationSlice),
        )

    def objects(self) -> Iterator[InventoryObject]:
        """Every object, by kind (clusters first, application slices last) then name."""
        for group in (
            self.clusters,
            self.repositories,
            self.slices,
            self.jobs,
            self.application_slices,
        ):
            yield from (group[name] for name in sorted(group))

    def digest(self) -> str:
        """sha256 (hex) of the normalized desired state: kinds, names and specs.

        Independent of file layout, document order, YAML spelling, comments and defaults
        written out or omitted; it changes exactly when the desired state does.
        """
        state = [
            {"kind": obj.kind, "name": obj.name, "spec": obj.normalized_spec()}
            for obj in self.objects()
        ]
        return hashlib.sha256(canonical_json(state).encode()).hexdigest()

    def summary(self) -> str:
        """`3 clusters, 1 repository, 1 slice, 2 jobs, 0 application slices`."""
        counts = [
            (len(self.clusters), "cluster", "clusters"),
            (len(self.repositories), "repository", "repositories"),
            (len(self.slices), "slice", "slices"),
            (len(self.jobs), "job", "jobs"),
            (len(self.application_slices), "application slice", "application slices"),
        ]
        return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in counts)

    def slice_of(self, job: ReplicationJob) -> ReplicationSlice:
        return _lookup(self.slices, job.spec.replication_slice_name, "ReplicationSlice")

    def repository_of(self, replication_slice: ReplicationSlice) -> ReplicationRepository:
        return _lookup(
            self.repositories, replication_slice.spec.repository, "ReplicationRepository"
        )

    def source_cluster_of(self, replication_slice: ReplicationSlice) -> Cluster:
        return _lookup(self.clusters, replication_slice.spec.source_cluster, "Cluster")

    def destination_cluster_of(self, replication_slice: ReplicationSlice) -> Cluster:
        return _lookup(self.clusters, replication_slice.spec.destination_cluster, "Cluster")


def _by_name(objects: list[InventoryObject], kind: type[_Object]) -> Mapping[str, _Object]:
    return MappingProxyType({obj.name: obj for obj in objects if isinstance(obj, kind)})


def _lookup(objects: Mapping[str, _Object], name: str, kind: str) -> _Object:
    try:
        return objects[name]
    except KeyError:
        # only for hand-built inventories: load_inventory checks every reference
        raise KubeferryError(f"unknown {kind} {name!r}") from None
