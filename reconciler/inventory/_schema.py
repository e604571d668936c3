"""JSON Schema of inventory documents, for editors (yaml-language-server) and CI."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import Field, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from reconciler.inventory._models import (
    API_VERSION,
    ApplicationSlice,
    Cluster,
    ReplicationJob,
    ReplicationRepository,
    ReplicationSlice,
)

_Document = Annotated[
    Cluster | ReplicationRepository | ReplicationSlice | ReplicationJob | ApplicationSlice,
    Field(discriminator="kind"),
]
JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


class _WithoutFieldTitles(GenerateJsonSchema):
    # pydantic titles fields from their Python names ("Apiversion"): noise in an editor
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def json_schema() -> dict[str, Any]:
    """One schema for any inventory document: a ``oneOf`` keyed on ``kind``."""
    schema = TypeAdapter(_Document).json_schema(
        by_alias=True, mode="validation", schema_generator=_WithoutFieldTitles
    )
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": f"kubeferry inventory document ({API_VERSION})",
        "description": "One YAML document of a kubeferry inventory; the kind selects the schema.",
        **schema,
    }
