"""A fake Hugging Face Hub on loopback, for tests: the endpoints `huggingface_hub` and `datasets` use.

Implements repo create, validate-yaml, repo info (`/api/datasets/<id>[/revision/<rev>]`), refs,
tag create, preupload, the LFS batch API and basic-transfer upload, commit (NDJSON, with the
`parentCommit` check), tree, paths-info and resolve (HEAD/GET with ranges), for model and dataset
repos. Xet is not implemented: run clients with `HF_HUB_DISABLE_XET=1`.

Faults can be injected per path: `hub.fail("/commit/", status=500, times=2)` answers the next two
matching requests with a 500; `status=None` drops the connection without an answer; `after=True`
handles the request first and then loses the answer (the commit lands, the client never hears).

    with FakeHub() as hub:            # serves on 127.0.0.1:<free port>; hub.url is the endpoint
        hub.create_repo("org/pool", files={"data/a/t.jsonl": b"..."})
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from .loopback import LoopbackServer

LFS_PATTERNS = ("*.parquet", "*.arrow", "*.png", "*.jpg", "*.bin", "*.safetensors", "*.gguf", "*.zip", "*.gz")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()
_REPO = r"(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)"
_GIT_REPO = r"(?:(?P<type>dataset|space)s/)?(?P<repo>[^/]+/[^/]+)"  # model repos have no prefix
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def oid(self) -> str:
        """What preupload reports and the client compares: sha256 for LFS files, the git blob id otherwise."""
        return self.sha256 if self.lfs else git_blob_oid(self.content)

    def entry(self, path: str) -> dict:
        out = {"type": "file", "path": path, "size": len(self.content), "oid": git_blob_oid(self.content)}
        if self.lfs:
            out["lfs"] = {"oid": self.sha256, "size": len(self.content), "pointerSize": 134}
        return out


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    date: str
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool = False
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        rev = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
        oid = self.branches.get(rev) or self.tags.get(rev) or (rev if rev in self.commits else None)
        return self.commits.get(oid) if oid else None

    def commit_at(self, revision: str) -> Commit:
        """The commit a revision names (a test's own lookup: an unknown one is a `KeyError`)."""
        commit = self.resolve(revision)
        if commit is None:
            raise KeyError(f"{self.repo_id} has no revision {revision!r}")
        return commit


@dataclass
class Fault:
    pattern: re.Pattern
    method: str | None
    status: int | None
    times: int
    after: bool
    retry_after: int | None
    body: Any = None
    """The answer's JSON body instead of an error (e.g. a 200 without a field the client needs)."""


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int | None
    """None: the connection was dropped."""


@dataclass
class Response:
    status: int
    body: bytes | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code

    def response(self) -> Response:
        headers = {"X-Error-Message": self.message}
        if self.code:
            headers["X-Error-Code"] = self.code
        return Response(self.status, {"error": self.message}, headers)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeHub(LoopbackServer):
    """In-memory Hub served over HTTP on loopback. Thread-safe; start with `start()` or `with`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.host, self.port = host, port
        self.token = token
        """When set, writes must carry `Authorization: Bearer <token>`."""
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.requests: list[RequestRecord] = []
        self.unhandled: list[str] = []
        self.tokens_seen: set[str] = set()
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._counter = itertools.count()
        self._server: ThreadingHTTPServer | None = None
        self._routes: list[tuple[str, re.Pattern, Callable[..., Response]]] = [
            ("POST", re.compile(r"^/api/repos/create$"), self._create_repo),
            ("POST", re.compile(r"^/api/validate-yaml$"), self._validate_yaml),
            ("GET", re.compile(rf"^/api/{_REPO}$"), self._info),
            ("GET", re.compile(rf"^/api/{_REPO}/revision/(?P<rev>[^/]+)$"), self._info),
            ("GET", re.compile(rf"^/api/{_REPO}/refs$"), self._refs),
            ("POST", re.compile(rf"^/api/{_REPO}/tag/(?P<rev>[^/]+)$"), self._create_tag),
            ("POST", re.compile(rf"^/api/{_REPO}/preupload/(?P<rev>[^/]+)$"), self._preupload),
            ("POST", re.compile(rf"^/api/{_REPO}/commit/(?P<rev>[^/]+)$"), self._commit),
            ("GET", re.compile(rf"^/api/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), self._tree),
            ("POST", re.compile(rf"^/api/{_REPO}/paths-info/(?P<rev>[^/]+)$"), self._paths_info),
            ("POST", re.compile(rf"^/{_GIT_REPO}\.git/info/lfs/objects/batch$"), self._lfs_batch),
            ("PUT", re.compile(r"^/__lfs/(?P<oid>[0-9a-f]{64})$"), self._lfs_upload),
            ("HEAD", re.compile(rf"^/{_GIT_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), self._resolve),
            ("GET", re.compile(rf"^/{_GIT_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), self._resolve),
        ]

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        class Handler(_Handler):
            hub = self

        return Handler

    def reset(self) -> None:
        """Forget every repo, fault and request (between tests sharing one server)."""
        with self._lock:
            self.repos.clear()
            self.lfs_store.clear()
            self.requests.clear()
            self.unhandled.clear()
            self.tokens_seen.clear()
            self._faults.clear()
            self.token = None

    # -- test API ------------------------------------------------------------------------------

    def fail(
        self,
        path: str,
        status: int | None = 500,
        *,
        times: int = 1,
        method: str | None = None,
        after: bool = False,
        retry_after: int | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next `times` requests whose path matches the regex `path` with `status`
        (None: drop the connection) and an error, or `body` if given. `after=True`: handle the
        request, then lose the answer (or replace it: `status=200, body={...}`)."""
        with self._lock:
            self._faults.append(Fault(re.compile(path), method, status, times, after, retry_after, body))

    def create_repo(
        self,
        repo_id: str,
        files: dict[str, bytes | str] | None = None,
        *,
        repo_type: str = "dataset",
        private: bool = False,
        message: str = "add files",
    ) -> str:
        """Create a repo directly (no HTTP), optionally with a first commit of `files`; returns main's oid."""
        with self._lock:
            repo = self._new_repo(repo_type, repo_id, private)
            if files:
                self.commit_files(repo_id, files, repo_type=repo_type, message=message)
            return repo.branches["main"]

    def commit_files(
        self,
        repo_id: str,
        files: dict[str, bytes | str],
        *,
        repo_type: str = "dataset",
        message: str = "update files",
        delete: tuple[str, ...] = (),
    ) -> str:
        """Commit `files` on main directly (no HTTP); returns the new commit oid."""
        with self._lock:
            repo = self.repo(repo_id, repo_type)
            tree = dict(repo.commits[repo.branches["main"]].files)
            for path in delete:
                tree.pop(path, None)
            for path, data in files.items():
                content = data.encode() if isinstance(data, str) else data
                tree[path] = StoredFile(content, self._is_lfs(path, len(content), content[:512], tree))
            return self._add_commit(repo, "main", tree, message)

    def tag(self, repo_id: str, tag: str, revision: str = "main", *, repo_type: str = "dataset") -> None:
        with self._lock:
            repo = self.repo(repo_id, repo_type)
            repo.tags[tag] = repo.commit_at(revision).oid

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, revision: str = "main", *, repo_type: str = "dataset") -> dict[str, bytes]:
        """The content of every file at a revision."""
        commit = self.repo(repo_id, repo_type).commit_at(revision)
        return {path: f.content for path, f in commit.files.items()}

    def stored_blobs(self) -> list[bytes]:
        """Every byte string the hub holds: files of every commit of every repo, and LFS objects."""
        with self._lock:
            blobs = [f.content for r in self.repos.values() for c in r.commits.values() for f in c.files.values()]
            return blobs + list(self.lfs_store.values())

    def count(self, method: str, path_regex: str) -> int:
        """How many requests matched (including failed ones)."""
        pattern = re.compile(path_regex)
        return sum(1 for r in self.requests if r.method == method and pattern.search(r.path))

    # -- internals -----------------------------------------------------------------------------

    def _new_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_type, repo_id, private)
        self.repos[(repo_type, repo_id)] = repo
        # like the real Hub: an initial commit holding .gitattributes
        self._add_commit(repo, "main", {".gitattributes": StoredFile(GITATTRIBUTES, False)}, "initial commit")
        return repo

    def _add_commit(self, repo: Repo, branch: str, files: dict[str, StoredFile], title: str) -> str:
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(f"{repo.repo_id}:{parent}:{title}:{next(self._counter)}".encode())
        for path in sorted(files):
            digest.update(f"{path}:{files[path].oid}".encode())
        oid = digest.hexdigest()
        repo.commits[oid] = Commit(oid, parent, title, _now(), files)
        repo.branches[branch] = oid
        return oid

    @staticmethod
    def _is_lfs(path: str, size: int, sample: bytes, tree: dict[str, StoredFile]) -> bool:
        attrs = tree.get(".gitattributes")
        patterns = (
            LFS_PATTERNS
            if attrs is None
            else [line.split()[0] for line in attrs.content.decode().splitlines() if "filter=lfs" in line]
        )
        name = path.rsplit("/", 1)[-1]
        return size >= LFS_MIN_SIZE or b"\0" in sample or any(fnmatch.fnmatch(name, p) for p in patterns)

    def _get_repo(self, repo_type: str | None, repo_id: str, auth: str | None) -> Repo:
        repo = self.repos.get((repo_type or "model", repo_id))
        if repo is None or (repo.private and (auth is None or (self.token and auth != self.token))):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    @staticmethod
    def _get_commit(repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(unquote(revision))
        if commit is None:
            raise HubError(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound")
        return commit

    def _take_fault(self, method: str, path: str, after: bool) -> Fault | None:
        for fault in self._faults:
            if (
                fault.times > 0
                and fault.after == after
                and fault.method in (None, method)
                and fault.pattern.search(path)
            ):
                fault.times -= 1
                return fault
        return None

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Response | None:
        """Route one request; None means: drop the connection."""
        path, _, query = raw_path.partition("?")
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        with self._lock:
            if token:
                self.tokens_seen.add(token)
            fault = self._take_fault(method, path, after=False)
            response: Response | None
            if fault is None:
                response = self._route(method, path, query, headers, body, token)
                fault = self._take_fault(method, path, after=True)
            if fault is not None:
                response = (
                    None
                    if fault.status is None
                    else Response(
                        fault.status,
                        fault.body if fault.body is not None else {"error": f"injected fault {fault.status}"},
                        {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {},
                    )
                )
            self.requests.append(RequestRecord(method, path, None if response is None else response.status))
            return response

    def _route(self, method: str, path: str, query: str, headers: dict, body: bytes, token: str | None) -> Response:
        for route_method, pattern, func in self._routes:
            match = pattern.match(path)
            if match and route_method == method:
                # like the real Hub, LFS uploads go to pre-signed URLs, without the token
                unauthenticated = path.startswith(("/api/validate-yaml", "/__lfs/"))
                if method in ("POST", "PUT", "DELETE") and not unauthenticated and self.token and token != self.token:
                    return HubError(401, "Invalid credentials in Authorization header").response()
                try:
                    return func(
                        method=method,
                        query=parse_qs(query),
                        headers=headers,
                        body=body,
                        token=token,
                        **{k: v for k, v in match.groupdict().items()},
                    )
                except HubError as err:
                    return err.response()
        self.unhandled.append(f"{method} {path}")
        return Response(404, {"error": f"fake hub: no route for {method} {path}"})

    # -- endpoints -----------------------------------------------------------------------------

    def _create_repo(self, body: bytes, token: str | None, **_) -> Response:
        payload = json.loads(body)
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        if "/" not in repo_id:
            repo_id = f"user/{repo_id}"
        url = f"{self.url}/{_URL_PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            return Response(409, {"error": "You already created this repo", "url": url})
        private = payload.get("private") or payload.get("visibility") == "private"
        self._new_repo(repo_type, repo_id, bool(private))
        return Response(200, {"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, body: bytes, **_) -> Response:
        import yaml

        content = json.loads(body)["content"]
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.DOTALL)
        try:
            meta = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as err:
            return Response(400, {"errors": [{"message": f"invalid YAML: {err}"}], "warnings": []})
        if match and not isinstance(meta, dict):
            return Response(400, {"errors": [{"message": "metadata must be a mapping"}], "warnings": []})
        return Response(200, {"errors": [], "warnings": []})

    def _info(self, type: str, repo: str, token: str | None, rev: str = "main", **_) -> Response:
        r = self._get_repo(type, repo, token)
        commit = self._get_commit(r, rev)
        card = None
        if "README.md" in commit.files:
            import yaml

            m = re.match(r"^---\s*\n(.*?)\n---\s*\n", commit.files["README.md"].content.decode(), re.DOTALL)
            card = yaml.safe_load(m.group(1)) if m else None
        siblings = [{"rfilename": p, "size": len(f.content)} for p, f in sorted(commit.files.items())]
        return Response(
            200,
            {
                "id": r.repo_id,
                "_id": hashlib.md5(r.repo_id.encode()).hexdigest()[:24],
                "author": r.repo_id.split("/")[0],
                "sha": commit.oid,
                "private": r.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "createdAt": r.commits[next(iter(r.commits))].date,
                "lastModified": commit.date,
                "siblings": siblings,
                **({"cardData": card} if isinstance(card, dict) else {}),
            },
        )

    def _refs(self, type: str, repo: str, token: str | None, **_) -> Response:
        r = self._get_repo(type, repo, token)

        def refs(d: dict[str, str], kind: str) -> list[dict]:
            return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": oid} for n, oid in sorted(d.items())]

        return Response(
            200,
            {"branches": refs(r.branches, "heads"), "tags": refs(r.tags, "tags"), "converts": [], "pullRequests": []},
        )

    def _create_tag(self, type: str, repo: str, rev: str, body: bytes, token: str | None, **_) -> Response:
        r = self._get_repo(type, repo, token)
        commit = self._get_commit(r, rev)
        tag = json.loads(body)["tag"]
        if tag in r.tags or tag in r.branches:
            return Response(409, {"error": f"Reference refs/tags/{tag} already exists"})
        r.tags[tag] = commit.oid
        return Response(200, {})

    def _preupload(self, type: str, repo: str, rev: str, body: bytes, token: str | None, **_) -> Response:
        r = self._get_repo(type, repo, token)
        commit = self._get_commit(r, rev)
        out = []
        for f in json.loads(body)["files"]:
            sample = base64.b64decode(f["sample"])
            lfs = self._is_lfs(f["path"], f["size"], sample, commit.files)
            existing = commit.files.get(f["path"])
            out.append(
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": existing.oid if existing is not None else None,
                }
            )
        return Response(200, {"files": out, "commitOid": commit.oid})

    def _lfs_batch(self, repo: str, body: bytes, token: str | None, type: str | None = None, **_) -> Response:
        self._get_repo(type, repo, token)
        objects = []
        for obj in json.loads(body)["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_store:
                item["actions"] = {"upload": {"href": f"{self.url}/__lfs/{obj['oid']}", "header": {}}}
            objects.append(item)
        return Response(
            200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"}
        )

    def _lfs_upload(self, oid: str, body: bytes, **_) -> Response:
        if hashlib.sha256(body).hexdigest() != oid:
            return Response(400, {"error": "sha256 mismatch"})
        self.lfs_store[oid] = body
        return Response(200, None)

    def _commit(self, type: str, repo: str, rev: str, body: bytes, token: str | None, **_) -> Response:
        r = self._get_repo(type, repo, token)
        branch = unquote(rev)
        if branch not in r.branches:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        head = r.commits[r.branches[branch]]
        tree, title = dict(head.files), "commit"
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                title = value.get("summary") or title
                parent = value.get("parentCommit")
                if parent is not None and parent != head.oid:
                    return Response(412, {"error": "A commit has happened since. Please refresh and try again."})
            elif key == "file":
                tree[value["path"]] = StoredFile(base64.b64decode(value["content"]), False)
            elif key == "lfsFile":
                content = self.lfs_store.get(value["oid"])
                if content is None:
                    return Response(422, {"error": f"LFS object {value['oid']} of {value['path']} was never uploaded"})
                tree[value["path"]] = StoredFile(content, True)
            elif key == "deletedFile":
                if tree.pop(value["path"], None) is None:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                tree = {p: f for p, f in tree.items() if not p.startswith(prefix)}
            else:
                return Response(400, {"error": f"unknown commit operation {key!r}"})
        oid = self._add_commit(r, branch, tree, title)
        return Response(
            200,
            {
                "commitUrl": f"{self.url}/{_URL_PREFIX[r.repo_type]}{r.repo_id}/commit/{oid}",
                "commitOid": oid,
                "success": True,
                "hookOutput": "",
            },
        )

    @staticmethod
    def _entries(commit: Commit, path: str, recursive: bool) -> list[dict]:
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        files: list[dict] = []
        dirs: dict[str, dict] = {}
        for p, f in sorted(commit.files.items()):
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                if depth > 1 and not recursive:
                    break
                d = prefix + "/".join(parts[:depth])
                dirs.setdefault(d, {"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()})
            if recursive or len(parts) == 1:
                files.append(f.entry(p))
        return sorted([*dirs.values(), *files], key=lambda e: e["path"])

    def _tree(
        self, type: str, repo: str, rev: str, query: dict, token: str | None, path: str | None = None, **_
    ) -> Response:
        commit = self._get_commit(self._get_repo(type, repo, token), rev)
        path = unquote(path or "")
        recursive = query.get("recursive", ["False"])[0].lower() in ("1", "true")
        entries = self._entries(commit, path, recursive)
        if path and not entries:
            raise HubError(404, f"{path} does not exist on {unquote(rev)}", "EntryNotFound")
        return Response(200, entries)

    def _paths_info(self, type: str, repo: str, rev: str, body: bytes, token: str | None, **_) -> Response:
        commit = self._get_commit(self._get_repo(type, repo, token), rev)
        paths = parse_qs(body.decode()).get("paths", [])
        out = []
        for p in paths:
            p = p.strip("/")
            if p in commit.files:
                out.append(commit.files[p].entry(p))
            elif any(f.startswith(p + "/") for f in commit.files):
                out.append({"type": "directory", "path": p, "oid": hashlib.sha1(p.encode()).hexdigest()})
        return Response(200, out)

    def _resolve(
        self,
        method: str,
        repo: str,
        rev: str,
        path: str,
        headers: dict,
        token: str | None,
        type: str | None = None,
        **_,
    ) -> Response:
        r = self._get_repo(type or "model", repo, token)
        commit = self._get_commit(r, rev)
        stored = commit.files.get(unquote(path))
        if stored is None:
            err = HubError(404, "Entry not found", "EntryNotFound").response()
            err.headers["X-Repo-Commit"] = commit.oid
            return err
        content, status = stored.content, 200
        out = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{stored.sha256 if stored.lfs else stored.oid}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if stored.lfs:
            out.update({"X-Linked-Etag": f'"{stored.sha256}"', "X-Linked-Size": str(len(content))})
        m = re.match(r"bytes=(\d*)-(\d*)$", headers.get("range", "").strip())
        if m and (m.group(1) or m.group(2)):
            size = len(content)
            if m.group(1):
                start, end = int(m.group(1)), int(m.group(2) or size - 1)
            else:  # suffix range: the last N bytes
                start, end = max(0, size - int(m.group(2))), size - 1
            if start >= size:
                return Response(416, None, {"Content-Range": f"bytes */{size}"})
            end = min(end, size - 1)
            out["Content-Range"] = f"bytes {start}-{end}/{size}"
            content, status = content[start : end + 1], 206
        out["Content-Length"] = str(len(content))
        return Response(status, content if method == "GET" else b"", out)


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # quiet: tests read hub.requests instead
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.hub.handle(self.command, self.path, headers, body)
        if response is None:
            self.close_connection = True
            return
        if isinstance(response.body, (dict, list)):
            payload = json.dumps(response.body).encode()
            response.headers.setdefault("Content-Type", "application/json")
        else:
            payload = response.body or b""
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        if "Content-Length" not in response.headers:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch
