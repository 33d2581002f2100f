"""Who is looking at the wallboard: an API token (gateway.api.tokens) with its role and
tenant, given once as `?token=` (or a sign-in form) and then kept in a cookie.

The token is checked against Redis on every request and on every tick of the live feed,
like the /v1/ API: a revoked token stops the feed within one interval. The cookie is
HttpOnly and SameSite=Strict, scoped to /wallboard, so page scripts never read it and
other sites cannot send it; the page redirects away from `?token=` so the token does not
stay in the address bar.
"""

from __future__ import annotations

from aiohttp import web

from gateway.api.tokens import TokenInfo, TokenStore

COOKIE = "callgate_wallboard"
COOKIE_PATH = "/wallboard"
COOKIE_MAX_AGE = 30 * 24 * 3600  # wallboard screens stay signed in; revoke to sign out


def token_of(request: web.Request) -> str:
    """The token a request carries: `?token=`, a bearer header, or the cookie."""
    query = request.query.get("token", "").strip()
    if query:
        return query
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and bearer.strip():
        return bearer.strip()
    return request.cookies.get(COOKIE, "").strip()


async def viewer(tokens: TokenStore, token: str) -> TokenInfo | None:
    """The token's entry, or None if it is missing, unknown, revoked or malformed. Redis
    errors propagate: the caller answers 503, never lets anyone in."""
    if not token:
        return None
    return await tokens.authenticate(token)


def remember(response: web.StreamResponse, token: str, *, secure: bool) -> None:
    response.set_cookie(COOKIE, token, path=COOKIE_PATH, max_age=COOKIE_MAX_AGE,
                        httponly=True, samesite="Strict", secure=secure)


def forget(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path=COOKIE_PATH)
