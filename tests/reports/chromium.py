"""Headless Chromium driven over the DevTools protocol (websockets), for report tests.

`--dump-dom` can not see console errors or whether an image decoded, so the test opens
the page through CDP: it listens for console errors, exceptions and failed loads, reads
every image's naturalWidth and takes a screenshot.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1200,900"]


class Browser:
    """A Chromium process; `ws_url` is its DevTools browser endpoint. Always `close()` it."""

    def __init__(self, profile_dir: Path, start_timeout: float = 30.0):
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + start_timeout
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not open its DevTools port within {start_timeout}s")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws_url = f"ws://127.0.0.1:{port}{path}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@dataclass
class PageCheck:
    errors: list[str] = field(default_factory=list)      # console errors, exceptions, failed loads
    images: list[dict[str, Any]] = field(default_factory=list)  # name, complete, width (natural), shown, right
    width: dict[str, int] = field(default_factory=dict)          # the viewport's (inner) and the page's (scroll)
    screenshot: bytes = b""


async def check_page(ws_url: str, url: str, timeout: float = 30.0) -> PageCheck:
    """Open `url` in a fresh tab, wait for load, and collect what the report test asserts on."""
    result = PageCheck()
    ids = itertools.count(1)
    async with asyncio.timeout(timeout), connect(ws_url, max_size=None) as ws:
        pending: dict[int, asyncio.Future] = {}
        loaded = asyncio.Event()

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if "id" in msg and msg["id"] in pending:
                    pending.pop(msg["id"]).set_result(msg)
                    continue
                method, params = msg.get("method"), msg.get("params", {})
                if method == "Page.loadEventFired":
                    loaded.set()
                elif method == "Runtime.exceptionThrown":
                    result.errors.append(f"exception: {params['exceptionDetails'].get('text')}")
                elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                    result.errors.append("console: " + " ".join(str(a.get("value")) for a in params["args"]))
                elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                    result.errors.append(f"log: {params['entry'].get('text')}")

        async def call(method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
            msg_id = next(ids)
            pending[msg_id] = asyncio.get_running_loop().create_future()
            message = {"id": msg_id, "method": method, "params": params}
            if session:
                message["sessionId"] = session
            await ws.send(json.dumps(message))
            reply = await pending[msg_id]
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply["result"]

        read_task = asyncio.create_task(reader())
        try:
            target = (await call("Target.createTarget", url="about:blank"))["targetId"]
            session = (await call("Target.attachToTarget", targetId=target, flatten=True))["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                await call(f"{domain}.enable", session)
            await call("Page.navigate", session, url=url)
            await loaded.wait()
            images = await call("Runtime.evaluate", session, returnByValue=True, expression=(
                "Array.from(document.images).map(i => ({name: i.dataset.file || i.getAttribute('src'),"
                " complete: i.complete, width: i.naturalWidth, shown: i.clientWidth,"
                " right: i.getBoundingClientRect().right}))"))
            result.images = images["result"]["value"]
            page = await call("Runtime.evaluate", session, returnByValue=True, expression=(
                "({inner: window.innerWidth, scroll: document.documentElement.scrollWidth})"))
            result.width = page["result"]["value"]
            shot = await call("Page.captureScreenshot", session, format="png")
            result.screenshot = base64.b64decode(shot["data"])
            await call("Target.closeTarget", targetId=target)
        finally:
            read_task.cancel()
    return result
