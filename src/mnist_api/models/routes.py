"""``/v1/models``: the model serving, and an administrator's reload of what models/LATEST names
(which every worker also does by itself within ``MNIST_API_MODEL_POLL_S``)."""

from __future__ import annotations

from fastapi import APIRouter

from mnist_api.kernel.dependencies import SettingsDep
from mnist_api.kernel.errors import problem_responses
from mnist_api.keys import AUTH_PROBLEMS, Administrator, Authenticated
from mnist_api.models.dependencies import RegistryDep
from mnist_api.models.schemas import ModelInfo, ModelReload, Models

router = APIRouter(
    prefix="/v1/models", tags=["models"], responses=problem_responses(*AUTH_PROBLEMS)
)


@router.get(
    "",
    summary="The model serving",
    description="Its version, accuracy, training data (MNIST, and corrections when it learnt "
    "from them), calibration, the thresholds of the verdicts, when it was made and when this "
    "worker started serving it.",
)
async def get_models(
    _principal: Authenticated, registry: RegistryDep, settings: SettingsDep
) -> Models:
    return Models(serving=ModelInfo.of(registry.served, settings.runtime, registry.thresholds))


@router.post(
    "/reload",
    summary="Serve the model that models/LATEST names now",
    description="The worker that answers loads the artifact that `MNIST_API_MODEL_PATH` names "
    "(through its `LATEST`) beside the model serving, warms it up and swaps it in between two "
    "batches: requests in flight finish on the old model. The other workers do the same within "
    "`MNIST_API_MODEL_POLL_S` seconds. An artifact that cannot be loaded is refused (409) and "
    "the old model goes on serving.",
    responses=problem_responses(409),
)
async def reload_model(_principal: Administrator, registry: RegistryDep) -> ModelReload:
    return ModelReload.of(await registry.reload(by="POST /v1/models/reload"))
