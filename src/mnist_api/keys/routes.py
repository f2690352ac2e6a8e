"""``/v1/keys/me``: which key a request is made with, so a client (the web page, a script) can
check a key before it uses it."""

from __future__ import annotations

from fastapi import APIRouter

from mnist_api.kernel.errors import problem_responses
from mnist_api.keys.schemas import KeyInfo
from mnist_api.keys.security import Authenticated

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=problem_responses(401, 429, 503))


@router.get(
    "/me",
    summary="The key this request is made with",
    description="Its id (the owner of its predictions), name, scopes and rate limit. With "
    "authentication off and no key sent: the anonymous principal, which may do everything.",
)
async def get_current_key(principal: Authenticated) -> KeyInfo:
    return KeyInfo.of(principal)
