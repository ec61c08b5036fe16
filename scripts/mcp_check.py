"""End-to-end check of Slovo's MCP server with the official Python `mcp` SDK.

Run by scripts/mcp-python-check.sh, which makes a venv with `mcp` from PyPI and builds
`slovo`. Everything happens in a temporary data directory:

1. Two tools are imported and approved with the real CLI: `notes` has no execution section
   (listing only; a call is refused), `web` is an HTTP tool whose API is a small HTTP server
   this script runs on loopback (`/echo` answers JSON, `/broken` answers 500).
2. `slovo serve` runs on a free loopback port; an agent token is created with the CLI.
3. Over streamable HTTP, in the legacy (initialize) and the 2026-07-28 (discover) modes:
   tools/list shapes, a call that succeeds, one whose API fails (isError), invalid arguments
   (isError, nothing recorded), a tool that cannot run (isError), an unknown tool (protocol
   error), no token (401), a reader token (403), and notifications/tools/list_changed after
   `slovo tool disable` in another process; the built-in `slovo_resolve` tool (a servable
   request and a gap).
4. Over stdio (`slovo mcp`): tools/list and a call, recorded as `mcp:stdio`.

If this build of `slovo` has no HTTP backend, the calls to `web` must come back as isError
results recording the missing backend: that still exercises the whole call path.

Prints one line per check and finally `N passed, M failed`; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import anyio
import httpx2
import mcp_types
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

PASSED: list[str] = []
FAILED: list[str] = []


def check(name: str, ok: bool, detail: object = "") -> None:
    if ok:
        PASSED.append(name)
        print(f"ok    {name}")
    else:
        FAILED.append(name)
        print(f"FAIL  {name}: {detail}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api(BaseHTTPRequestHandler):
    """The remote API of the `web` tool."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlparse(self.path)
        if url.path == "/echo":
            text = parse_qs(url.query).get("text", [""])[0]
            body, status = json.dumps({"echo": text}).encode(), 200
        else:
            body, status = b'{"error": "broken on purpose"}', 500
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Slovo:
    """The `slovo` binary over one data directory."""

    def __init__(self, binary: str, data_dir: Path) -> None:
        self.binary = binary
        self.env = dict(os.environ, SLOVO_DATA_DIR=str(data_dir), SLOVO_HTTP_ALLOW_PRIVATE="1")
        self.env.pop("SLOVO_DATABASE_URL", None)

    def run(self, *args: str) -> str:
        p = subprocess.run([self.binary, *args], env=self.env, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"slovo {' '.join(args)} exited {p.returncode}: {p.stderr}")
        return p.stdout

    def json(self, *args: str) -> object:
        return json.loads(self.run("--json", *args))


def manifests(api_port: int) -> dict[str, str]:
    return {
        "notes.yaml": """
name: notes
version: 1.0.0
description: Notes without an execution section (listed, never run)
capabilities:
  - name: add
    description: Add a note
    destructive: false
    parameters:
      type: object
      properties: {text: {type: string}}
      required: [text]
""",
        "web.yaml": f"""
name: web
version: 1.0.0
description: A small HTTP API on loopback
capabilities:
  - name: echo
    description: Echo the text back
    endpoint: /echo
    method: GET
    parameters:
      type: object
      properties: {{text: {{type: string}}}}
      required: [text]
      additionalProperties: false
  - name: broken
    description: Always fails
    endpoint: /broken
    method: GET
    parameters: {{type: object}}
permissions:
  network_allow: ["127.0.0.1:{api_port}"]
api_requirements:
  base_url: http://127.0.0.1:{api_port}
""",
    }


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def http_status(url: str, token: str | None) -> tuple[int, dict]:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "check", "version": "1"},
            },
        }
    ).encode()
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("content-type", "application/json")
    req.add_header("accept", "application/json, text/event-stream")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


async def exercise(client: Client, label: str, slovo: Slovo, web_backend: dict) -> None:
    """tools/list and tools/call on one connected client."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    check(f"{label}: tools/list has slovo_resolve, notes__add, web__echo, web__broken", set(tools) == {"slovo_resolve", "notes__add", "web__echo", "web__broken"}, list(tools))
    resolve = tools.get("slovo_resolve")
    check(
        f"{label}: slovo_resolve takes {{query, limit?}}",
        resolve is not None and resolve.input_schema.get("required") == ["query"] and set(resolve.input_schema.get("properties", {})) == {"query", "limit"},
        resolve,
    )
    check(f"{label}: names are at most 64 characters", all(len(n) <= 64 for n in tools), list(tools))
    echo = tools.get("web__echo")
    check(
        f"{label}: inputSchema is the capability's parameters",
        echo is not None and echo.input_schema.get("required") == ["text"] and echo.input_schema.get("additionalProperties") is False,
        echo,
    )
    check(
        f"{label}: GET means readOnlyHint",
        echo is not None and echo.annotations is not None and echo.annotations.read_only_hint is True,
        echo and echo.annotations,
    )
    notes = tools.get("notes__add")
    check(
        f"{label}: destructive: false is destructiveHint false",
        notes is not None and notes.annotations is not None and notes.annotations.destructive_hint is False,
        notes and notes.annotations,
    )

    before = len(slovo.json("executions", "--limit", "1000"))
    r = await client.call_tool("web__echo", {"text": f"hello {label}"}, meta={"conversation_id": f"conv-{label}"})
    if r.is_error and "no backend" in text_of(r):
        web_backend["missing"] = True
        check(f"{label}: web__echo without an HTTP backend is an isError result", True)
    else:
        check(f"{label}: web__echo succeeds", not r.is_error, text_of(r))
        body = (r.structured_content or {}).get("body", {})
        check(f"{label}: web__echo structuredContent has the API's answer", body == {"echo": f"hello {label}"}, r.structured_content)
    execution_id = (r.meta or {}).get("slovo/execution_id")
    recorded = slovo.json("execution", "show", execution_id) if execution_id else {}
    check(f"{label}: the call is recorded with its conversation id", recorded.get("conversation_id") == f"conv-{label}", recorded)
    check(f"{label}: the call is recorded as mcp:<token id>", str(recorded.get("actor", "")).startswith("mcp:") and recorded.get("actor") != "mcp:stdio", recorded.get("actor"))

    r = await client.call_tool("web__broken", {})
    check(f"{label}: a failing tool is an isError result", r.is_error is True, text_of(r))
    if not web_backend.get("missing"):
        check(f"{label}: the failure names the HTTP status", "500" in text_of(r), text_of(r))

    r = await client.call_tool("web__echo", {"text": 5})
    check(f"{label}: invalid arguments are an isError result", r.is_error is True and "invalid arguments" in text_of(r), text_of(r))
    r = await client.call_tool("notes__add", {"text": "x"})
    check(f"{label}: a tool without an execution section is an isError result", r.is_error is True and "cannot run" in text_of(r), text_of(r))
    r = await client.call_tool("slovo_resolve", {"query": 'add a note "buy milk"'})
    top = ((r.structured_content or {}).get("candidates") or [{}])[0]
    check(
        f"{label}: slovo_resolve ranks notes.add first, with the quoted text filled",
        not r.is_error and (r.structured_content or {}).get("gap") is False and top.get("tool") == "notes" and top.get("capability") == "add" and top.get("arguments", {}).get("text") == "buy milk",
        r.structured_content or text_of(r),
    )
    r = await client.call_tool("slovo_resolve", {"query": "order a large pepperoni pizza", "limit": 3})
    gap = r.structured_content or {}
    check(
        f"{label}: slovo_resolve reports a gap with a discovery request",
        not r.is_error and gap.get("gap") is True and bool((gap.get("discovery") or {}).get("id")),
        gap or text_of(r),
    )
    after = len(slovo.json("executions", "--limit", "1000"))
    check(f"{label}: only the two calls that ran were recorded", after == before + 2, (before, after))

    try:
        await client.call_tool("nothing__here", {})
        check(f"{label}: an unknown tool is a protocol error", False, "no error")
    except MCPError as e:
        check(f"{label}: an unknown tool is a protocol error", "unknown tool" in str(e), e)


async def http_checks(url: str, agent: str, slovo: Slovo, web_backend: dict) -> None:
    for mode in ("legacy", "auto"):
        changed = anyio.Event()

        async def on_message(message) -> None:
            if isinstance(message, mcp_types.ToolListChangedNotification):
                changed.set()

        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {agent}"}, timeout=httpx2.Timeout(30, read=300))
        async with Client(streamable_http_client(url, http_client=http), mode=mode, message_handler=on_message) as client:
            label = f"http/{mode}({client.protocol_version})"
            await exercise(client, label, slovo, web_backend)
            if mode == "legacy":
                # An unsolicited notification on the session's stream, after another process
                # changed the list.
                await anyio.sleep(1)
                slovo.run("tool", "disable", "notes")
                with anyio.move_on_after(10):
                    await changed.wait()
                check(f"{label}: tools/list_changed after `slovo tool disable`", changed.is_set(), "nothing within 10 s")
                slovo.run("tool", "enable", "notes")
            if mode == "auto":
                check(f"{label}: auto negotiates 2026-07-28", client.protocol_version == "2026-07-28", client.protocol_version)
                # list_changed through a subscription, after a change made by another process.
                async with client.listen(tools_list_changed=True) as sub:
                    slovo.run("tool", "disable", "notes")
                    got = None
                    with anyio.move_on_after(10):
                        async for event in sub:
                            got = event
                            break
                    check(f"{label}: tools/list_changed after `slovo tool disable`", got is not None, f"nothing within 10 s (handler saw one: {changed.is_set()})")
                tools = {t.name for t in (await client.list_tools(cache_mode="refresh")).tools}
                check(f"{label}: a disabled tool is no longer listed", "notes__add" not in tools, tools)
                r = await client.call_tool("notes__add", {"text": "x"})
                check(f"{label}: calling a disabled tool is an isError result", r.is_error is True and "disabled" in text_of(r), text_of(r))
                slovo.run("tool", "enable", "notes")


async def stdio_checks(slovo: Slovo, web_backend: dict) -> None:
    params = StdioServerParameters(command=slovo.binary, args=["mcp"], env=slovo.env)
    async with Client(params) as client:
        label = f"stdio({client.protocol_version})"
        tools = {t.name for t in (await client.list_tools()).tools}
        check(f"{label}: tools/list", tools == {"slovo_resolve", "notes__add", "web__echo", "web__broken"}, tools)
        r = await client.call_tool("web__echo", {"text": "over stdio"})
        if web_backend.get("missing"):
            check(f"{label}: web__echo is an isError result (no HTTP backend)", r.is_error is True, text_of(r))
        else:
            check(f"{label}: web__echo succeeds", not r.is_error and (r.structured_content or {}).get("body") == {"echo": "over stdio"}, text_of(r))
        execution_id = (r.meta or {}).get("slovo/execution_id")
        recorded = slovo.json("execution", "show", execution_id) if execution_id else {}
        check(f"{label}: the call is recorded as mcp:stdio", recorded.get("actor") == "mcp:stdio", recorded)
        if client.protocol_version >= "2026-07-28":
            async with client.listen(tools_list_changed=True) as sub:
                slovo.run("tool", "revoke", "notes")
                got = None
                with anyio.move_on_after(10):
                    async for event in sub:
                        got = event
                        break
                check(f"{label}: tools/list_changed after `slovo tool revoke`", got is not None, "nothing within 10 s")
            tools = {t.name for t in (await client.list_tools(cache_mode="refresh")).tools}
            check(f"{label}: a revoked tool is no longer listed", tools == {"slovo_resolve", "web__echo", "web__broken"}, tools)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slovo", required=True, help="path to the slovo binary")
    args = parser.parse_args()

    api_port = free_port()
    api = ThreadingHTTPServer(("127.0.0.1", api_port), Api)
    threading.Thread(target=api.serve_forever, daemon=True).start()

    with tempfile.TemporaryDirectory(prefix="slovo-mcp-check-") as tmp:
        data = Path(tmp) / "data"
        slovo = Slovo(args.slovo, data)
        for name, text in manifests(api_port).items():
            path = Path(tmp) / name
            path.write_text(text)
            slovo.run("tool", "import", str(path))
            slovo.run("tool", "approve", path.stem)
        agent = slovo.json("token", "create", "--role", "agent", "--label", "mcp check")["token"]
        reader = slovo.json("token", "create", "--role", "reader")["token"]

        port = free_port()
        log = open(Path(tmp) / "serve.log", "w")
        server = subprocess.Popen([slovo.binary, "serve", "--listen", f"127.0.0.1:{port}"], env=slovo.env, stdout=log, stderr=log)
        web_backend: dict = {}
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{base}/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            url = f"{base}/mcp"
            status, body = http_status(url, None)
            check("http: no token is 401", status == 401 and body.get("error", {}).get("code") == "unauthorized", (status, body))
            status, body = http_status(url, reader)
            check("http: a reader token is 403", status == 403 and body.get("error", {}).get("code") == "forbidden", (status, body))
            try:
                anyio.run(http_checks, url, agent, slovo, web_backend)
            except Exception:
                check("http checks ran to the end", False, traceback.format_exc())
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
        if FAILED:
            print("--- slovo serve log (tail) ---")
            print((Path(tmp) / "serve.log").read_text()[-4000:])
        check("slovo serve stopped on SIGTERM", server.returncode == 0, (server.returncode, (Path(tmp) / "serve.log").read_text()[-2000:]))
        try:
            anyio.run(stdio_checks, slovo, web_backend)
        except Exception:
            check("stdio checks ran to the end", False, traceback.format_exc())
        check("the audit trail verifies", "events" in slovo.json("audit", "verify"), "")

    if web_backend.get("missing"):
        print("note: this slovo has no HTTP backend; calls were checked as isError results")
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
