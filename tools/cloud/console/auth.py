"""Who may use the console: the holder of the server's control token.

Three ways in, all ending in a session cookie (HttpOnly, SameSite=Strict, random, kept in
memory only, so a restart logs everybody out):

- the one-time URL printed at start (``/login?once=CODE``): the code works once;
- the login page, given the control token (``token`` in ``<state dir>/server.json``);
- an ``Authorization: Bearer <token>`` header (scripts, like the control API).

Every other request is refused: pages redirect to the login page, the API answers 401. Requests
that change something must be JSON from the console's own origin, which a cross-site form or
script cannot send without a CORS preflight the console never answers.
"""

import hmac
import secrets
from urllib.parse import quote

from aiohttp import web

PUBLIC = frozenset({"/login", "/static/console.css"})
COOKIE = "aliyun_local_console_%d"  # the port in the name: cookies are shared across ports
SAFE_METHODS = frozenset({"GET", "HEAD"})


class Gate:
    def __init__(self, token: str):
        self.token = token
        self.port = 0  # set once the console listens
        self._sessions = set()
        self._codes = set()

    @property
    def cookie(self) -> str:
        return COOKIE % self.port

    def one_time_code(self) -> str:
        code = secrets.token_urlsafe(24)
        self._codes.add(code)
        return code

    def redeem(self, code: str) -> bool:
        """True (once) for a code of ``one_time_code``."""
        for known in list(self._codes):
            if hmac.compare_digest(known, code):
                self._codes.discard(known)
                return True
        return False

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())

    def open_session(self, response: web.StreamResponse) -> None:
        session = secrets.token_hex(16)
        self._sessions.add(session)
        response.set_cookie(self.cookie, session, httponly=True, samesite="Strict", path="/")

    def close_session(self, request, response) -> None:
        self._sessions.discard(request.cookies.get(self.cookie, ""))
        response.del_cookie(self.cookie, path="/")

    def allowed(self, request) -> bool:
        session = request.cookies.get(self.cookie)
        if session and any(hmac.compare_digest(session, s) for s in self._sessions):
            return True
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and self.token_ok(header[7:])

    @web.middleware
    async def middleware(self, request, handler):
        if request.path in PUBLIC:
            return await handler(request)
        if not self.allowed(request):
            if request.path.startswith("/api/"):
                raise web.HTTPUnauthorized(
                    text='{"ok": false, "error": "log in first"}', content_type="application/json"
                )
            raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe=""))
        if request.method not in SAFE_METHODS and not same_origin_json(request):
            raise web.HTTPForbidden(
                text='{"ok": false, "error": "JSON from the console only"}',
                content_type="application/json",
            )
        return await handler(request)


def same_origin_json(request) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None and origin != "%s://%s" % (request.scheme, request.host):
        return False
    return request.content_type == "application/json"


def safe_next(target: str) -> str:
    """A redirect target after login: a path of this site, never another origin."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"
