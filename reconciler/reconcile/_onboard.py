"""Onboarding at run time: what the inventory wants, what the ledger recorded, what the
SliceConfigs say, and the onboard action itself (through reconciler.kubeslice)."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.errors import KubeferryError
from reconciler.inventory import Inventory
from reconciler.kubeslice import (
    SLICE_CONFIG_API,
    SLICE_CONFIG_KIND,
    add_application_namespace,
    onboarded_clusters,
    project_namespace,
    remove_application_namespace,
    update_slice_config,
)
from reconciler.plan import Action, Onboarding, OnboardingObservation
from reconciler.reconcile._connect import Connections
from state import Ledger

EVENT_KIND = "onboarding"
"""Ledger event recording an onboarding kubeferry added or removed (data: the Onboarding)."""


def desired_onboardings(inventory: Inventory) -> dict[str, Onboarding]:
    """job -> the onboarding its ``onboard`` asks for."""
    wanted: dict[str, Onboarding] = {}
    for name, job in inventory.jobs.items():
        if job.spec.onboard is None:
            continue
        app = inventory.application_slices.get(job.spec.onboard.application_slice)
        if app is None:
            continue  # the inventory's reference rules report it
        wanted[name] = Onboarding(
            job=name,
            application_slice=app.name,
            controller_cluster=app.spec.controller_cluster,
            project=app.spec.project,
            namespace=job.spec.destination_namespace,
            cluster=inventory.slice_of(job).spec.destination_cluster,
        )
    return wanted


def recorded_onboardings(ledger: Ledger) -> dict[str, Onboarding]:
    """job -> what kubeferry onboarded for it and has not removed (newest event wins)."""
    recorded: dict[str, Onboarding] = {}
    for event in ledger.events():
        if event.kind != EVENT_KIND or not event.job:
            continue
        data = dict(event.data or {})
        if data.get("state") == "added":
            try:
                recorded[event.job] = Onboarding.from_dict(data)
            except KeyError:
                continue
        else:
            recorded.pop(event.job, None)
    return recorded


def _observe(connections: Connections, onboarding: Onboarding) -> OnboardingObservation:
    namespace = project_namespace(onboarding.project)
    try:
        client = connections.client(onboarding.controller_cluster)
        found = client.get(
            SLICE_CONFIG_API, SLICE_CONFIG_KIND, onboarding.application_slice, namespace
        )
    except KubeferryError as error:
        return OnboardingObservation(found=False, message=f"{onboarding.where}: {error}")
    if found is None:
        return OnboardingObservation(found=False, message=f"{onboarding.where} not found")
    return OnboardingObservation(
        found=True, clusters=tuple(onboarded_clusters(found, onboarding.namespace))
    )


def observe_onboardings(
    inventory: Inventory, connections: Connections, onboardings: Iterable[Onboarding]
) -> dict[str, OnboardingObservation]:
    """job -> its namespace in the SliceConfig (controllers not in the inventory are skipped)."""
    seen: dict[str, OnboardingObservation] = {}
    for onboarding in onboardings:
        if onboarding.job in seen or onboarding.controller_cluster not in inventory.clusters:
            continue
        seen[onboarding.job] = _observe(connections, onboarding)
    return seen


def run_onboarding(connections: Connections, ledger: Ledger, action: Action) -> str:
    """Remove the old entry (if any), add the new one (if any), record both in the ledger."""
    done: list[str] = []
    if "remove" in action.details:
        old = Onboarding.from_dict(action.details["remove"])
        changed = update_slice_config(
            connections.client(old.controller_cluster),
            old.application_slice,
            old.project,
            lambda m: remove_application_namespace(m, old.namespace, old.cluster),
            missing_ok=True,
        )
        ledger.record_event(
            EVENT_KIND,
            f"removed {old.cluster}/{old.namespace} from {old.where}",
            job=old.job,
            data={"state": "removed", **old.to_dict()},
        )
        done.append(f"removed {old.cluster}/{old.namespace}" + ("" if changed else " (was gone)"))
    if "add" in action.details:
        new = Onboarding.from_dict(action.details["add"])
        update_slice_config(
            connections.client(new.controller_cluster),
            new.application_slice,
            new.project,
            lambda m: add_application_namespace(m, new.namespace, new.cluster),
        )
        ledger.record_event(
            EVENT_KIND,
            f"onboarded {new.cluster}/{new.namespace} into {new.where}",
            job=new.job,
            data={"state": "added", **new.to_dict()},
        )
        done.append(f"onboarded {new.cluster}/{new.namespace} into {new.where}")
    return "; ".join(done)
