#!/usr/bin/env python3
"""A stand-in for the light controller of openapi.yaml, on 127.0.0.1:8742 (or the port given).

    python3 examples/home-lights/device.py [PORT]              # in the foreground
    device=$(python3 examples/home-lights/device.py --daemon)  # in the background, once listening;
    kill $device                                               # prints its pid for this
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LIGHTS = {room: {"room": room, "on": False, "brightness": 100} for room in ("kitchen", "hall", "bedroom")}


class Device(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def room(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        return parts[1] if len(parts) == 2 and parts[0] == "lights" else None

    def do_GET(self):
        if self.path.split("?")[0].rstrip("/") == "/lights":
            return self.answer(200, list(LIGHTS.values()))
        room = self.room()
        if room in LIGHTS:
            return self.answer(200, LIGHTS[room])
        self.answer(404, {"error": "no such light"})

    def do_PUT(self):
        room = self.room()
        if room not in LIGHTS:
            return self.answer(404, {"error": "no such light"})
        try:
            change = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            LIGHTS[room]["on"] = bool(change["on"])
            if "brightness" in change:
                LIGHTS[room]["brightness"] = int(change["brightness"])
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"error": "expected {\"on\": true|false, \"brightness\": 1..100}"})
        self.answer(200, LIGHTS[room])

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--daemon"]
    port = int(args[0]) if args else 8742
    server = ThreadingHTTPServer(("127.0.0.1", port), Device)
    if "--daemon" in sys.argv:
        # Listening already: the caller may use the device as soon as the pid is printed.
        pid = os.fork()
        if pid:
            print(pid)
            sys.exit(0)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    server.serve_forever()
