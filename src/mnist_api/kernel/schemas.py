"""Types shared by the HTTP schemas of every subject."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# A 64-bit float, said so in the spec (``format: double``): SDK generators otherwise pick 32-bit
# floats (Go) or decimals (Java).
Double = Annotated[float, Field(json_schema_extra={"format": "double"})]
