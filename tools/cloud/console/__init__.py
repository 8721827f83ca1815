"""The web console of the local cloud: the vendor console's flows in a browser.

``Console(cloud, token)`` is an aiohttp application on the cloud's own event loop (it calls the
registry, the broker and the control API's handlers directly). Pages are Jinja2 templates
(autoescaped) that only lay out forms and empty tables; the browser fills them from the JSON API
(``api.py``; the log and its stream: ``live.py``) with ``textContent`` and keeps them live
through server-sent events (``/api/events``, one event per new message-log row). Access:
``auth.py``.

Pages: 产品 Products, 设备 Devices, one device (Topic列表 with 发布消息, 物模型数据 with the
property chart, set property and service calls), 日志服务 Log service.
"""

import logging
from pathlib import Path

import jinja2
from aiohttp import web

from tools.cloud.console import api
from tools.cloud.console.auth import Gate, safe_next

log = logging.getLogger("aliyun-local.console")

HERE = Path(__file__).parent
# Content Security Policy: the console's own scripts and styles only, nothing inline.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGES = (  # (path, template, title in the menu)
    ("/products", "products.html", "Products"),
    ("/devices", "devices.html", "Devices"),
    ("/log", "log.html", "Log service"),
)


class Console:
    def __init__(self, cloud, token: str):
        self.cloud = cloud
        self.gate = Gate(token)
        self.api = api.ConsoleAPI(cloud, token)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.runner = None
        self.port = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_headers, self.gate.middleware])
        app.router.add_get("/", self.home)
        app.router.add_get("/login", self.login_page)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)
        for path, template, _ in PAGES:
            app.router.add_get(path, self._page(template))
        app.router.add_get("/devices/{pk}/{dn}", self._page("device.html"))
        app.router.add_static("/static", HERE / "static")
        self.api.add_routes(app.router)
        return app

    async def start(self, host: str, port: int) -> int:
        self.runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, host, port).start()
        self.port = self.runner.addresses[0][1]
        self.gate.port = self.port
        return self.port

    async def close(self):
        self.api.close_streams()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def url(self) -> str:
        return "http://127.0.0.1:%d/" % self.port

    def login_url(self) -> str:
        """A URL that logs one browser in, once."""
        return "%slogin?once=%s" % (self.url(), self.gate.one_time_code())

    # pages ------------------------------------------------------------------------------------

    def render(self, template, status=200, **context) -> web.Response:
        context.setdefault("menu", [(path, title) for path, _, title in PAGES])
        text = self.templates.get_template(template).render(**context)
        return web.Response(text=text, status=status, content_type="text/html")

    def _page(self, template):
        async def page(request):
            context = dict(request.match_info, path=request.path, api=api)
            return self.render(template, **context)

        return page

    async def home(self, request):
        raise web.HTTPSeeOther("/devices")

    async def login_page(self, request):
        code = request.query.get("once")
        target = safe_next(request.query.get("next", "/"))
        if code is not None:
            if not self.gate.redeem(code):
                error = "This one-time link was used already or is unknown: log in with the token."
                return self.render("login.html", 401, error=error, next=target)
            response = web.HTTPSeeOther(target)
            self.gate.open_session(response)
            raise response
        return self.render("login.html", error=None, next=target)

    async def login(self, request):
        form = await request.post()
        target = safe_next(str(form.get("next", "/")))
        if not self.gate.token_ok(str(form.get("token", "")).strip()):
            return self.render("login.html", 401, error="Wrong token.", next=target)
        response = web.HTTPSeeOther(target)
        self.gate.open_session(response)
        raise response

    async def logout(self, request):
        response = web.HTTPSeeOther("/login")
        self.gate.close_session(request, response)
        raise response


@web.middleware
async def _headers(request, handler):
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _secure(exc)
        raise
    _secure(response)
    return response


def _secure(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
