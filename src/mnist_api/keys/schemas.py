"""The JSON bodies of the keys API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from mnist_api.keys.records import Principal, Scope


class KeyInfo(BaseModel):
    """The key a request was made with (never its secret)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2a9c1d8e7b",
                    "name": "laptop",
                    "scopes": ["delete", "label", "predict", "read"],
                    "rate": 10.0,
                    "burst": 50,
                    "created_at": "2026-12-03T09:30:00.123Z",
                    "last_used_at": "2026-12-03T10:01:07.500Z",
                }
            ]
        }
    )

    id: str = Field(description="the key's id, which owns the predictions made with it")
    name: str
    scopes: list[Scope] = Field(description="what the key may do; `admin` includes the rest")
    rate: float | None = Field(
        json_schema_extra={"format": "double"},
        description="requests per second (null: not limited)",
    )
    burst: int | None = Field(description="requests the key may make at once (null: any)")
    created_at: datetime | None = None
    last_used_at: datetime | None = Field(
        None, description="when the key was last used (to within a minute)"
    )

    @classmethod
    def of(cls, principal: Principal) -> KeyInfo:
        return cls(
            id=principal.owner,
            name=principal.name,
            scopes=sorted(principal.scopes),
            rate=principal.rate,
            burst=principal.burst,
            created_at=principal.created_at,
            last_used_at=principal.last_used_at,
        )
