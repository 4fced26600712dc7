"""A fake Hugging Face Hub for offline tests: a stdlib HTTP server on 127.0.0.1.

It answers the routes ``huggingface_hub`` 2.4 calls for ``create_repo`` + ``upload_folder`` of
small files (read from the client source: ``hf_api.create_repo``, ``hf_api._validate_yaml``,
``_commit_api._fetch_upload_modes`` and ``_commit_api._send_commit``):

- ``POST /api/repos/create``                      JSON {name, organization, visibility or private, type} -> {url}
- ``GET  /api/agent-harnesses``                   registry read by ``utils._detect_agent`` for the User-Agent
- ``GET  /api/models/{ns}/{name}``                repo info (called after a 401/403 on create)
- ``POST /api/validate-yaml``                     JSON {content, repoType} -> {errors, warnings}
- ``POST /api/models/{ns}/{name}/preupload/{rev}`` JSON {files: [{path, sample, size}]}
                                                   -> {files: [{path, uploadMode, shouldIgnore, oid}]}
- ``POST /api/models/{ns}/{name}/commit/{rev}``    NDJSON: header line, then one ``file`` line per file
                                                   (base64 content) -> {commitUrl, commitOid, pullRequestUrl}

Every file is answered ``uploadMode: "regular"`` so its bytes travel inside the commit payload
(no LFS / Xet storage round trip). Each request is recorded (method, path with query, headers,
body) so tests can check what was sent and where the token appeared.

Modes: ``"ok"``; ``"bad_token"`` (every call 401, as the Hub does for an invalid token);
``"other_owner"`` (the repo exists, public, owned by someone else: create 403, repo info 200,
preupload 403, which is what the real Hub does for a valid token without write access).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeRepo:
    repo_id: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


class FakeHub:
    """``with FakeHub(token="hf_x") as hub: ... hub.endpoint ... hub.repos["me/model"].files``."""

    def __init__(self, token: str | None = None, mode: str = "ok", owner: str = "someone-else"):
        self.token, self.mode, self.owner = token, mode, owner
        self.requests: list[Recorded] = []
        self.unexpected: list[str] = []
        self.repos: dict[str, FakeRepo] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                body = self._body()
                with hub._lock:
                    hub.requests.append(
                        Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                status, payload, extra = hub._route(self.command, self.path.split("?")[0], self.headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ----------------------------------------------------------------------------- routing

    def _error(self, status: int, message: str) -> tuple[int, dict, dict]:
        return status, {"error": message}, {"X-Error-Message": message}

    def _authorised(self, headers) -> bool:
        return self.token is None or headers.get("Authorization") == f"Bearer {self.token}"

    def _route(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict, dict]:
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/api/agent-harnesses":
            # huggingface_hub 2.4 fetches this registry (without auth) to build its User-Agent.
            return 200, {"standardEnvVars": [], "harnesses": {}}, {}
        if self.mode == "bad_token" or not self._authorised(headers):
            return self._error(401, "Invalid credentials in Authorization header")
        if method == "POST" and path == "/api/repos/create":
            req = json.loads(body)
            repo_id = f"{req.get('organization') or 'me'}/{req['name']}"
            if self.mode == "other_owner":
                return self._error(
                    403,
                    f'You don\'t have the rights to create a model under the namespace "{req.get("organization")}"',
                )
            with self._lock:
                if repo_id in self.repos:
                    return self._error(409, "You already created this model repo")
                # clients send {"visibility": "private"} (recent huggingface_hub) or {"private": true} (older)
                private = req.get("visibility") == "private" or req.get("private") is True
                self.repos[repo_id] = FakeRepo(repo_id, private=private)
            return 200, {"url": f"{self.endpoint}/{repo_id}", "name": repo_id, "id": repo_id}, {}
        if method == "POST" and path == "/api/validate-yaml":
            content = json.loads(body)["content"]
            try:
                yaml.safe_load(content.split("---")[1]) if content.startswith("---") else None
            except yaml.YAMLError as e:
                return 400, {"errors": [{"message": str(e)}]}, {}
            return 200, {"errors": [], "warnings": []}, {}
        if len(parts) == 4 and parts[:2] == ["api", "models"] and method == "GET":
            repo_id = "/".join(parts[2:4])
            if self.mode == "other_owner":
                return 200, {"id": repo_id, "author": self.owner, "sha": "0" * 40, "private": False}, {}
            if repo_id in self.repos:
                return 200, {"id": repo_id, "sha": "0" * 40, "private": self.repos[repo_id].private}, {}
            return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
        if (
            len(parts) >= 6
            and parts[:2] == ["api", "models"]
            and parts[4] in ("preupload", "commit")
            and method == "POST"
        ):
            repo_id, action = "/".join(parts[2:4]), parts[4]
            if self.mode == "other_owner":
                return self._error(403, f"You don't have write access to {repo_id}")
            if repo_id not in self.repos:
                return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
            if action == "preupload":
                files = json.loads(body)["files"]
                return (
                    200,
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                            for f in files
                        ]
                    },
                    {},
                )
            return self._commit(self.repos[repo_id], body)
        self.unexpected.append(f"{method} {path}")
        return 404, {"error": f"fake hub: no route {method} {path}"}, {}

    def _commit(self, repo: FakeRepo, body: bytes) -> tuple[int, dict, dict]:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return 400, {"error": "commit payload must start with a header line"}, {}
        for item in lines[1:]:
            if item["key"] != "file":
                return 400, {"error": f"fake hub only takes regular files, got {item['key']}"}, {}
            value = item["value"]
            repo.files[value["path"]] = (
                base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
            )
        oid = hashlib.sha1(body).hexdigest()
        repo.commits.append(lines[0]["value"]["summary"])
        return (
            200,
            {
                "success": True,
                "commitOid": oid,
                "commitUrl": f"{self.endpoint}/{repo.repo_id}/commit/{oid}",
                "pullRequestUrl": None,
            },
            {},
        )
