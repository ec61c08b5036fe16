#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/.

The seeds are small, real inputs: manifests of both dialects, OpenAPI documents of each
version, the first bytes of HTTP and SOCKS5 proxy connections, and bundle tarballs (good and
hostile). Run it again after changing it; the output is deterministic (fixed timestamps and
owners in the tarballs), so an unchanged script rewrites identical files.

    python3 fuzz/seeds.py
"""
import gzip
import io
import os
import shutil
import struct
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# --- manifests ---------------------------------------------------------------------------------
UNIT_CONVERTER = """\
# Capability dialect, no execution section.
name: unit-converter
version: "1.2.0"
description: Converts quantities between metric and imperial units.
capabilities:
  - name: convert_length
    description: Convert a length from one unit to another
    parameters:
      type: object
      required: [value, from, to]
      properties:
        value: {type: number, description: The quantity to convert}
        from: {type: string, enum: [mm, cm, m, km, in, ft]}
        to: {type: string, enum: [mm, cm, m, km, in, ft]}
permissions:
  internet_access: false
  storage_quota_mb: 5
  cpu_limit_percent: 20
  memory_limit_mb: 64
"""

PROCESS_TOOL = """\
name: word-count
version: "0.1.0"
description: Counts words.
capabilities:
  - name: count
    description: Count the words of a text
    parameters:
      type: object
      required: [text]
      properties:
        text: {type: string, maxLength: 10000}
permissions:
  internet_access: false
  memory_limit_mb: 32
execution:
  type: process
  command: [bin/count, --json]
"""

WASM_TOOL = """\
name: hasher
version: "1.0.0"
description: Hashes a string.
capabilities:
  - name: sha256
    description: SHA-256 of a text
    parameters:
      type: object
      properties:
        text: {type: string}
permissions:
  internet_access: false
execution:
  type: wasm
  module: hasher.wasm
"""

HTTP_TOOL_JSON = """\
{"name": "weather", "version": "0.2.0", "description": "Current weather",
 "capabilities": [{"name": "now", "description": "Weather now", "endpoint": "/v1/now",
   "method": "GET", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
 "permissions": {"internet_access": true, "allowed_hosts": ["api.weather.example.org"]},
 "api_requirements": {"base_url": "https://api.weather.example.org"}}
"""

EXECUTION_DIALECT = """\
{"name": "d", "version": "2.0.0", "description": "x", "capabilities": ["t"],
 "execution": {"type": "docker", "image": "i:1"},
 "permissions": {"network": {"outbound": true}, "storage": {"persistent": false}},
 "inputs": {"word": {"type": "string", "required": true}}}
"""

YAML_ANCHORS = """\
name: anchors
version: "1.0.0"
description: &d Shared text
capabilities:
  - name: a
    description: *d
    parameters: &p {type: object, properties: {x: {type: integer}}}
  - name: b
    description: *d
    parameters: *p
"""

# --- OpenAPI -----------------------------------------------------------------------------------
SWAGGER_2 = """\
swagger: "2.0"
info: {title: Pet Store, version: "1.0.0"}
host: petstore.example.org
basePath: /v2
schemes: [https]
securityDefinitions:
  api_key: {type: apiKey, name: X-API-Key, in: header}
security: [{api_key: []}]
paths:
  /pets/{petId}:
    get:
      operationId: getPet
      parameters:
        - {name: petId, in: path, required: true, type: integer}
      responses:
        "200": {description: A pet, schema: {$ref: "#/definitions/Pet"}}
    delete:
      operationId: deletePet
      parameters:
        - {name: petId, in: path, required: true, type: integer}
      responses: {"204": {description: Deleted}}
  /pets:
    post:
      operationId: addPet
      parameters:
        - {name: body, in: body, required: true, schema: {$ref: "#/definitions/Pet"}}
      responses: {"201": {description: Created}}
definitions:
  Pet:
    type: object
    required: [name]
    properties:
      id: {type: integer, format: int64}
      name: {type: string}
      tags: {type: array, items: {type: string}}
"""

OPENAPI_30 = """\
openapi: 3.0.3
info: {title: Notes API, version: 2.1.0, description: Stores short notes.}
servers: [{url: "https://notes.example.org/api"}]
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
  schemas:
    Note:
      type: object
      properties:
        text: {type: string, maxLength: 500}
        tags: {type: array, items: {$ref: "#/components/schemas/Tag"}}
        parent: {$ref: "#/components/schemas/Note"}
    Tag: {type: string, enum: [work, home]}
security: [{bearer: []}]
paths:
  /notes:
    get:
      operationId: listNotes
      tags: [notes]
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100}}
        - {name: X-Trace, in: header, schema: {type: string}}
      responses: {"200": {description: Notes}}
    post:
      operationId: createNote
      requestBody:
        required: true
        content:
          application/json: {schema: {$ref: "#/components/schemas/Note"}}
      responses: {"201": {description: Created}}
  /notes/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    put:
      requestBody:
        content:
          application/x-www-form-urlencoded:
            schema: {type: object, properties: {text: {type: string}}}
      responses: {"200": {description: Updated}}
"""

OPENAPI_31 = """\
{"openapi": "3.1.0",
 "info": {"title": "Geo", "version": "0.1"},
 "servers": [{"url": "https://{region}.geo.example.org/v1",
              "variables": {"region": {"default": "eu", "enum": ["eu", "us"]}}}],
 "components": {"securitySchemes": {"key": {"type": "apiKey", "in": "query", "name": "key"},
   "oauth": {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "https://geo.example.org/token", "scopes": {}}}}},
   "schemas": {"Point": {"type": "object", "properties": {"lat": {"type": ["number", "null"]},
     "lon": {"type": "number"}}, "required": ["lat", "lon"]}}},
 "paths": {"/distance": {"post": {"operationId": "distance", "security": [{"key": []}, {"oauth": []}],
   "requestBody": {"content": {"application/json": {"schema": {"type": "object",
     "properties": {"a": {"$ref": "#/components/schemas/Point"}, "b": {"$ref": "#/components/schemas/Point"}},
     "additionalProperties": false}}}},
   "responses": {"200": {"description": "metres"}}}},
  "/lookup": {"get": {"parameters": [{"name": "q", "in": "query", "required": true,
     "schema": {"type": "string", "pattern": "^[a-z ]+$"}},
     {"name": "filter", "in": "query", "style": "deepObject", "schema": {"type": "object"}}],
   "responses": {"default": {"description": "ok"}}}}},
 "webhooks": {}}
"""

OPENAPI_REFS = """\
openapi: 3.0.0
info: {title: Refs, version: "1"}
paths:
  /a:
    $ref: "#/x-paths/a"
  /b:
    get:
      parameters: [{$ref: "#/components/parameters/P"}]
      responses: {"200": {$ref: "#/components/responses/R"}}
  /remote:
    get:
      parameters: [{$ref: "other.yaml#/P"}]
      responses: {"200": {description: x}}
x-paths:
  a:
    get: {operationId: a, responses: {"200": {description: x}}}
components:
  parameters:
    P: {name: p, in: query, schema: {$ref: "#/components/schemas/Loop"}}
  responses:
    R: {description: r}
  schemas:
    Loop: {type: object, properties: {next: {$ref: "#/components/schemas/Loop"}}}
"""

# --- egress: HTTP ------------------------------------------------------------------------------
HTTP = {
    "connect": b"CONNECT api.example.org:443 HTTP/1.1\r\nHost: api.example.org:443\r\n\r\n",
    "connect-wildcard": b"CONNECT www.example.org:443 HTTP/1.1\r\n\r\n",
    "connect-literal": b"CONNECT 198.51.100.7:8080 HTTP/1.1\r\nHost: 198.51.100.7:8080\r\n\r\n",
    "connect-v6": b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
    "connect-inside": b"CONNECT inside.example.org:443 HTTP/1.1\r\n\r\n",
    "connect-host-mismatch": b"CONNECT api.example.org:443 HTTP/1.1\r\nHost: inside.example.org\r\n\r\n",
    "get": b"GET http://api.example.org/v1/x?q=1 HTTP/1.1\r\nHost: api.example.org\r\n"
           b"Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nProxy-Authorization: Basic eDp5\r\n\r\n",
    "get-port": b"GET http://API.Example.ORG.:80/ HTTP/1.1\r\nHost: api.example.org:80\r\n\r\n",
    "get-origin-form": b"GET /v1/x HTTP/1.1\r\nHost: api.example.org\r\n\r\n",
    "get-https": b"GET https://api.example.org/ HTTP/1.1\r\n\r\n",
    "get-two-hosts": b"GET http://api.example.org/ HTTP/1.1\r\nHost: api.example.org\r\nHost: inside.example.org\r\n\r\n",
    "get-userinfo": b"GET http://user@api.example.org/ HTTP/1.1\r\n\r\n",
    "post-body": b"POST http://api.example.org/v1 HTTP/1.1\r\nHost: api.example.org\r\n"
                 b"Content-Length: 5\r\n\r\nhello",
    "post-chunked": b"POST http://api.example.org/v1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n",
    "pipelined": b"GET http://api.example.org/a HTTP/1.1\r\n\r\n"
                 b"GET http://missing.example.net/b HTTP/1.1\r\n\r\n"
                 b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n\r\n",
    "http10": b"GET http://api.example.org/ HTTP/1.0\r\n\r\n",
}

# --- egress: SOCKS5 ----------------------------------------------------------------------------
def socks(cmd, atyp, addr, port, methods=b"\x00"):
    greeting = bytes([5, len(methods)]) + methods
    return greeting + bytes([5, cmd, 0, atyp]) + addr + struct.pack(">H", port)

def name(n):
    return bytes([len(n)]) + n

SOCKS = {
    "connect-name": socks(1, 3, name(b"api.example.org"), 443),
    "connect-v4": socks(1, 1, bytes([198, 51, 100, 7]), 8080),
    "connect-v4-loopback": socks(1, 1, bytes([127, 0, 0, 1]), 22),
    "connect-v6": socks(1, 4, bytes(15) + b"\x01", 443),
    "connect-inside": socks(1, 3, name(b"inside.example.org"), 443),
    "connect-trailing-dot": socks(1, 3, name(b"API.EXAMPLE.ORG."), 80),
    "bind": socks(2, 3, name(b"api.example.org"), 443),
    "udp": socks(3, 1, bytes(4), 0),
    "bad-atyp": socks(1, 9, b"", 0),
    "no-acceptable-method": bytes([5, 1, 2]),
    "several-methods": socks(1, 3, name(b"api.example.org"), 443, methods=b"\x02\x01\x00"),
    "non-utf8-name": socks(1, 3, name(b"\xff\xfe.example.org"), 443),
}

# --- bundles -----------------------------------------------------------------------------------
def tar_bytes(entries, fmt=tarfile.PAX_FORMAT):
    """entries: (name, kind, data_or_target, mode)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for name, kind, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = mode
            if kind == "file":
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                t.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = data
                t.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                t.addfile(info)
    data = out.getvalue()
    # tarfile pads the archive to a 10 KiB record; the two zero blocks that end it are enough.
    end = len(data.rstrip(b"\0"))
    end = -(-end // 512) * 512 + 1024
    return data[:end]

def gz(data):
    return gzip.compress(data, mtime=0)

TOOL = [
    ("slovo.yaml", "file", PROCESS_TOOL.encode(), 0o644),
    ("bin", "dir", None, 0o755),
    ("bin/count", "file", b"#!/bin/sh\nwc -w\n", 0o755),
    ("bin/alias", "symlink", "count", 0o777),
    ("share/dangling", "symlink", "missing/../../x", 0o777),
]

BUNDLES = {
    "process.tar": tar_bytes(TOOL),
    "process-gnu.tar": tar_bytes(TOOL, fmt=tarfile.GNU_FORMAT),
    "process.tar.gz": gz(tar_bytes(TOOL, fmt=tarfile.USTAR_FORMAT)),
    "wasm.tar": tar_bytes([
        ("./", "dir", None, 0o755),
        ("./manifest.yaml", "file", WASM_TOOL.encode(), 0o644),
        ("./hasher.wasm", "file", b"\x00asm\x01\x00\x00\x00", 0o644),
    ]),
    "manifest-link.tar": tar_bytes([
        ("real.yaml", "file", UNIT_CONVERTER.encode(), 0o644),
        ("slovo.yaml", "symlink", "real.yaml", 0o777),
    ]),
    "escape-dotdot.tar": tar_bytes([("../evil", "file", b"x", 0o644)]),
    "escape-link.tar": tar_bytes([
        ("slovo.yaml", "file", PROCESS_TOOL.encode(), 0o644),
        ("out", "symlink", "..", 0o777),
        ("out/evil", "file", b"x", 0o644),
    ]),
    "link-outside.tar": tar_bytes([
        ("slovo.yaml", "file", PROCESS_TOOL.encode(), 0o644),
        ("bin", "symlink", "../../etc", 0o777),
    ]),
    "hardlink.tar": tar_bytes([
        ("slovo.yaml", "file", PROCESS_TOOL.encode(), 0o644),
        ("h", "hardlink", "slovo.yaml", 0o644),
    ]),
    "fifo.tar": tar_bytes([("p", "fifo", None, 0o644)]),
    "duplicate.tar": tar_bytes([
        ("slovo.yaml", "file", UNIT_CONVERTER.encode(), 0o644),
        ("slovo.yaml", "file", PROCESS_TOOL.encode(), 0o644),
    ]),
}


def write(target, files):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for n, data in files.items():
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(d, n), "wb") as f:
            f.write(data)


def shared(n):
    """A manifest of the shared test data, when this checkout has it beside it."""
    p = os.path.join(HERE, "..", "..", "shared", "manifests", n)
    return open(p, "rb").read() if os.path.exists(p) else None


def main():
    manifests = {
        "unit-converter.yaml": UNIT_CONVERTER,
        "process.yaml": PROCESS_TOOL,
        "wasm.yaml": WASM_TOOL,
        "http.json": HTTP_TOOL_JSON,
        "execution-dialect.json": EXECUTION_DIALECT,
        "anchors.yaml": YAML_ANCHORS,
    }
    for n in ["air-quality.yaml", "dictionary.manifest.json"]:
        data = shared(n)
        if data is not None:
            manifests[n] = data
    write("manifest", manifests)
    write("openapi", {
        "swagger-2.0.yaml": SWAGGER_2,
        "openapi-3.0.yaml": OPENAPI_30,
        "openapi-3.1.json": OPENAPI_31,
        "refs.yaml": OPENAPI_REFS,
    })
    write("egress_http", HTTP)
    write("egress_socks", SOCKS)
    write("bundle_tar", BUNDLES)


if __name__ == "__main__":
    main()
