"""The original system's endpoint, kept so that
``curl -XPOST http://HOST:PORT/upload -F "file=@digit.png"`` keeps working."""

from __future__ import annotations

from fastapi import APIRouter

from mnist_api.dependencies import ServiceDep
from mnist_api.routes.docs import problems
from mnist_api.routes.predictions import ID_LINKS, UploadField
from mnist_api.schemas import Prediction

router = APIRouter(tags=["legacy"])


@router.post(
    "/upload",
    deprecated=True,
    summary="Recognise an uploaded digit (original endpoint)",
    description="Same as `POST /v1/predictions` but answers 200, as the original service did. "
    "New clients should use `POST /v1/predictions`.",
    responses={200: {"links": ID_LINKS}, **problems(400, 413, 415, 422, 503)},
)
async def upload_legacy(file: UploadField, service: ServiceDep) -> Prediction:
    return await service.predict(file)
