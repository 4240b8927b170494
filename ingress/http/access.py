"""Who is calling and what it may do: the `Principal` of the request, its scope, its rate limits.

Every route but `/live` and `/ready` depends on exactly one admission below (a unit test checks
that), which yields an `Actor`: the principal and the user it acts for. The admission checks that
the principal may act for that user (a `user` key only for its own `user_id`; 403 otherwise), then
counts the request against the principal's and that user's rate limits (429 with `Retry-After`).
A request a key may not make still counts against the key, never against the user it named.
The key itself was checked before the body was read (`AuthenticationMiddleware`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Request

from ingress.http.api import DoorDep
from ingress.http.door import HttpDoor
from ingress.http.middleware import PRINCIPAL_KEY
from ingress.http.protocol import SpeechRequest
from serve_app.errors import ForbiddenError
from serve_app.security.keys import Principal, Role, bearer_key

OPERATOR_ROLES: tuple[Role, ...] = ("admin", "service")


@dataclass(frozen=True)
class Actor:
    principal: Principal
    user_id: str | None  # the user this request acts for (None: nobody in particular)


def get_principal(request: Request, door: DoorDep) -> Principal:
    principal = request.scope.get(PRINCIPAL_KEY)
    if principal is None:  # the app was built without the middleware: authenticate here
        principal = door.keyring.authenticate(
            bearer_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def _admit(door: HttpDoor, principal: Principal, user_id: str | None, denied: str | None = None) -> Actor:
    """Scope first, so a refused request is not counted against the user it named; then the limits
    (only for authenticated callers: with keys off every caller is the same anonymous admin)."""
    if denied is None and user_id is not None and not principal.can_act_for(user_id):
        denied = "this key may only act for its own user"
    if door.keyring.enforced:
        await door.limiter.check(principal.name, None if denied else user_id)
    if denied:
        raise ForbiddenError(denied)
    return Actor(principal, user_id)


async def any_caller(door: DoorDep, principal: PrincipalDep) -> Actor:
    """Routes holding no user's data: any valid key (a `user` key still counts as its user)."""
    return await _admit(door, principal, principal.user_id)


async def operator(door: DoorDep, principal: PrincipalDep) -> Actor:
    """Routes over every user's data (the profile list): admin or service keys only."""
    denied = None if principal.role in OPERATOR_ROLES else "this operation needs an admin or service key"
    return await _admit(door, principal, None, denied)


async def path_user(door: DoorDep, principal: PrincipalDep, user_id: str) -> Actor:
    """`/…/{user_id}` routes act for the user in the path."""
    return await _admit(door, principal, user_id)


async def named_user(door: DoorDep, principal: PrincipalDep, user_id: Annotated[str, Form()]) -> Actor:
    """A required `user_id` form field names the user (verify)."""
    return await _admit(door, principal, user_id)


async def optional_user(
    door: DoorDep, principal: PrincipalDep, user_id: Annotated[str | None, Form()] = None
) -> Actor:
    """An optional `user_id` form field, checked when present (analyze)."""
    return await _admit(door, principal, user_id or None)


async def sender(door: DoorDep, principal: PrincipalDep, user_id: Annotated[str | None, Form()] = None) -> Actor:
    """The sender of a voice message: the `user_id` field, or a `user` key's own user when absent,
    so the message improves that user's profile. Service and admin keys send for anyone."""
    return await _admit(door, principal, user_id or principal.user_id)


@dataclass(frozen=True)
class SpeechOrder:
    actor: Actor
    request: SpeechRequest


async def speech_voice(door: DoorDep, principal: PrincipalDep, body: SpeechRequest) -> SpeechOrder:
    """`/v1/audio/speech`: a `voice` naming a user (not a built-in voice) speaks in that user's cloned
    voice, so it is admitted as acting for that user; a built-in voice acts for the caller's own."""
    return SpeechOrder(await _admit(door, principal, body.voice_user_id or principal.user_id), body)


# Where the route does not need the actor: `dependencies=[...]` in its decorator.
ANY_CALLER = Depends(any_caller)
OPERATOR = Depends(operator)
PATH_USER = Depends(path_user)
# Where it does: a parameter.
NamedUser = Annotated[Actor, Depends(named_user)]
OptionalUser = Annotated[Actor, Depends(optional_user)]
Sender = Annotated[Actor, Depends(sender)]
SpeechVoice = Annotated[SpeechOrder, Depends(speech_voice)]
ADMISSIONS = frozenset({any_caller, operator, path_user, named_user, optional_user, sender, speech_voice})
