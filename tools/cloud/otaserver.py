"""The running server's OTA side (see tools/cloud/ota.py for the package and the store)."""

import json
import logging
import re
import urllib.parse
from pathlib import Path

from tools.cloud import registry as reg
from tools.cloud.alink import CloudError
from tools.cloud.https import HTTPError, Response, json_response
from tools.cloud.ota import STEP_TEXT, URL_HOST, OtaStore

log = logging.getLogger("aliyun-local.ota")

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_PIECE = 16384


def parse_range(header: str, size: int):
    """``(start, end)`` (end inclusive) of a ``Range`` header, None without one; HTTPError 416
    for a range this server does not serve (one range, inside the file)."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match:
        raise HTTPError(416)
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else size - 1
    if start >= size or end < start:
        raise HTTPError(416)
    return start, min(end, size - 1)


class OtaService:
    def __init__(self, cloud):
        self.cloud = cloud
        self.store = None

    def start(self):
        self.store = OtaStore(self.cloud.state_dir)

    def close(self):
        if self.store is not None:
            self.store.close()
            self.store = None

    def routes(self):
        return {("GET", "/ota/package"): self.download}

    def control_routes(self, guard):
        return {("POST", "/ota/deploy"): guard(self.deploy_request)}

    def url(self, package, dn) -> str:
        host = URL_HOST % self.cloud.region
        query = urllib.parse.urlencode({"id": package["id"], "dn": dn})
        return "https://%s/ota/package?%s" % (host, query)

    def push_data(self, package, dn) -> dict:
        """The ``data`` of a push and of a ``firmware/get_reply`` (§4.6)."""
        return {
            "size": package["size"],
            "version": package["version"],
            "url": self.url(package, dn),
            "md5": package["md5"],
            "sign": package["sign"],
            "signMethod": package["sign_method"],
            "module": package["module"],
            "isDiff": 0,
        }

    # HTTPS ------------------------------------------------------------------------------------

    async def download(self, request) -> Response:
        package = self.store.package_by_id(request.query.get("id", ""))
        if package is None:
            raise HTTPError(404)
        data = Path(package["file"]).read_bytes()
        wanted = parse_range(request.headers.get("range", ""), len(data))
        start, end = wanted or (0, len(data) - 1)
        body = data[start : end + 1]
        pk, dn = package["product_key"], request.query.get("dn", "")
        self.store.count_served(package["id"], pk, dn, len(body))
        headers = [("Accept-Ranges", "bytes")]
        if wanted is not None:
            headers.append(("Content-Range", "bytes %d-%d/%d" % (start, end, len(data))))
        content = {"package": package["version"], "range": "%d-%d" % (start, end)}
        status = 206 if wanted is not None else 200
        self.cloud.registry.log(reg.API, pk, dn or None, request.path, content, status)
        return Response(status, body, "application/octet-stream", headers=headers)

    # deploy -----------------------------------------------------------------------------------

    async def deploy_request(self, request):
        body = request.json()
        pushed = await self.deploy(
            body["productKey"], body["version"], body.get("devices") or [], body.get("module")
        )
        return json_response({"ok": True, "devices": pushed})

    async def deploy(self, pk, version, devices, module=None) -> list:
        """Create a job for each device (every device of the product without ``devices``) and
        push it to those online; the others get it with their next ``firmware/get``."""
        package = self.store.package(pk, version, module or "app")
        if package is None:
            raise CloudError("no package %s %s for %s (ota add first)" % (module, version, pk))
        registry = self.cloud.registry
        names = devices or [d["deviceName"] for d in registry.devices(pk)]
        out = []
        for dn in names:
            if registry.device(pk, dn) is None:
                raise CloudError("no device %s/%s" % (pk, dn))
            self.store.set_job(pk, dn, package)
            status = await self._push(pk, dn, package)
            out.append({"deviceName": dn, "push": str(status)})
        return out

    async def _push(self, pk, dn, package):
        topic = "/ota/device/upgrade/%s/%s" % (pk, dn)
        message = {"code": "1000", "data": self.push_data(package, dn), "message": "success"}
        message["id"] = reg.now_ms()
        payload = json.dumps(message).encode()
        return await self.cloud.alink.publish_down(topic, payload, 1)

    # uplinks (called by tools.cloud.alink) ----------------------------------------------------

    def progress(self, pk, dn, params) -> int:
        module = params.get("module") or "app"
        try:
            step = int(params["step"])
        except (KeyError, TypeError, ValueError):
            return 460
        desc = str(params.get("desc") or "")
        if self.store.job(pk, dn, module) is None:
            return 200
        if step < 0:
            desc = desc or STEP_TEXT.get(step, "failed")
            self.store.update_job(pk, dn, module, state="failed", step=step, desc=desc)
        elif 1 <= step <= 100:
            state = "downloading" if step < 100 else "installed"
            self.store.update_job(pk, dn, module, state=state, step=step, desc=desc)
        else:
            return 460
        return 200

    def informed(self, pk, dn, module, version):
        module = module or "default"
        self.store.set_version(pk, dn, module, version)
        job = self.store.job(pk, dn, "app" if module == "default" else module)
        if job is not None and job["version"] == version and job["state"] != "failed":
            self.store.update_job(pk, dn, job["module"], state="upgraded", step=100)

    def pending(self, pk, dn, module) -> dict:
        """The ``data`` of a ``firmware/get_reply``: the job still to do, else ``{}``."""
        job = self.store.job(pk, dn, module or "app")
        if job is None or job["state"] in ("upgraded", "failed"):
            return {}
        package = self.store.package_by_id(job["package"])
        return self.push_data(package, dn) if package else {}
