#!/usr/bin/env python3
"""A stand-in for Discord's REST API for the demo (no Discord is reachable here).

Serves on 127.0.0.1:PORT, answers channel message creates and edits, and webhook executes
(`POST /webhooks/ID/TOKEN?wait=true`) and webhook message edits
(`PATCH /webhooks/ID/TOKEN/messages/MSG`), the way Discord does (a Message object, ids as
strings) and appends every request to a JSON-lines file, so the demo
can show the one message per deployment and its edits. Gantry reaches it through
GANTRY_DISCORD_API_URL. Standard library only.

usage: fake_discord.py PORT LOG_FILE
"""
import itertools
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, LOG = int(sys.argv[1]), sys.argv[2]
IDS = itertools.count(1100000000000000000)


def message(mid, channel, body):
    return {
        "id": str(mid), "channel_id": channel, "content": "", "tts": False,
        "author": {"id": "1090000000000000001", "username": "Gantry", "discriminator": "0000", "avatar": None, "bot": True},
        "timestamp": "2026-12-01T12:00:00.000000+00:00", "edited_timestamp": None,
        "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [],
        "embeds": body.get("embeds", []), "pinned": False, "type": 0,
    }


class Handler(BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"null") or {}
        parts = self.path.split("?")[0].removeprefix("/api/v10/").split("/")
        with open(LOG, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path, "body": body}) + "\n")
        if parts[:1] == ["channels"] and parts[2:3] == ["messages"]:
            mid = parts[3] if len(parts) > 3 else next(IDS)
            out, status = message(mid, parts[1], body), 200
        elif parts[:1] == ["webhooks"] and len(parts) == 3:
            out, status = message(next(IDS), "1090000000000000111", body), 200
        elif parts[:1] == ["webhooks"] and len(parts) == 5 and parts[3] == "messages":
            out, status = message(parts[4], "1090000000000000111", body), 200
        else:
            out, status = {"message": "404: Not Found", "code": 0}, 404
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_PATCH = _answer

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
