"""Emulated Cloud Storage JSON API (the subset stock Airflow operators and their async hooks use).

Authorisation: a live bearer token from this emulator (service-account or federated), whose members hold a role
on the bucket or on the project (``project_iam``) that grants the permission; 401 / 403 otherwise in the Cloud
Storage error shape. A request with no ``Authorization`` header at all is served as ``anonymous`` with full
access when ``allow_anonymous_storage`` is true (gcloud-aio-storage never sends a token under
``STORAGE_EMULATOR_HOST``); a bad or expired token is always 401.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import urllib.parse
from typing import TYPE_CHECKING, Any

from . import api_errors as errors
from .iam import bearer_token
from .state import IssuedToken, StoredBucket, StoredObject, fingerprint, rfc3339

if TYPE_CHECKING:
    from .state import EmulatorState

_OBJECT_PERMISSIONS = {"storage.objects.get", "storage.objects.list", "storage.objects.create",
                       "storage.objects.delete", "storage.objects.update"}
_BUCKET_PERMISSIONS = {"storage.buckets.get", "storage.buckets.list", "storage.buckets.create",
                       "storage.buckets.delete", "storage.buckets.update"}
ROLE_PERMISSIONS: dict[str, set[str]] = {
    "roles/storage.objectViewer": {"storage.objects.get", "storage.objects.list"},
    "roles/storage.objectCreator": {"storage.objects.create"},
    "roles/storage.objectUser": _OBJECT_PERMISSIONS,
    "roles/storage.objectAdmin": _OBJECT_PERMISSIONS,
    "roles/storage.legacyBucketReader": {"storage.buckets.get", "storage.objects.list"},
    "roles/storage.admin": _OBJECT_PERMISSIONS | _BUCKET_PERMISSIONS,
    "roles/editor": _OBJECT_PERMISSIONS | _BUCKET_PERMISSIONS,
    "roles/owner": _OBJECT_PERMISSIONS | _BUCKET_PERMISSIONS,
}
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,61}[a-z0-9]$")
_generation = itertools.count(1)


class Reply:
    """What a storage handler answers: status, JSON (dict) or raw bytes, extra headers."""

    def __init__(self, status: int, body: dict[str, Any] | bytes | None, headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.headers = headers or {}


def crc32c(data: bytes) -> int:
    try:
        import google_crc32c

        return int(google_crc32c.value(data))
    except ImportError:  # pragma: no cover - google-cloud-storage brings google-crc32c
        crc = 0xFFFFFFFF
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
        return crc ^ 0xFFFFFFFF


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class StorageApi:
    """One Cloud Storage request."""

    def __init__(self, state: EmulatorState, log: dict[str, Any], base_url: str) -> None:
        self.state = state
        self.log = log
        self.base_url = base_url
        self.config = state.snapshot()
        self.caller: IssuedToken | None = None

    # -- entry ---------------------------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, query: dict[str, str], headers: Any, body: bytes) -> Reply:
        self._authenticate(headers.get("Authorization"))
        segments = [urllib.parse.unquote(s) for s in raw_path.strip("/").split("/")]
        if segments[:4] == ["upload", "storage", "v1", "b"] and len(segments) == 6 and segments[5] == "o":
            return self._upload(method, segments[4], query, headers, body)
        if segments[:4] == ["download", "storage", "v1", "b"] and len(segments) >= 7 and segments[5] == "o":
            return self._get_object(segments[4], "/".join(segments[6:]), {**query, "alt": "media"}, headers)
        if segments[:2] != ["storage", "v1"] or len(segments) < 3 or segments[2] != "b":
            raise errors.storage_error(404, "notFound", "Not Found")
        rest = segments[3:]
        if not rest:
            if method == "GET":
                return self._list_buckets(query)
            if method == "POST":
                return self._insert_bucket(query, body)
        elif len(rest) == 1:
            if method == "GET":
                return self._get_bucket(rest[0])
            if method == "DELETE":
                return self._delete_bucket(rest[0])
        elif rest[1] == "o":
            bucket = rest[0]
            if len(rest) == 2:
                if method == "GET":
                    return self._list_objects(bucket, query)
                if method == "POST":
                    return self._upload(method, bucket, {**query, "uploadType": query.get("uploadType", "media")},
                                        headers, body)
            for verb in ("copyTo", "rewriteTo"):
                if method == "POST" and len(rest) == 8 and rest[3] == verb and rest[4] == "b" and rest[6] == "o":
                    return self._copy(bucket, rest[2], rest[5], rest[7], body, rewrite=verb == "rewriteTo")
            if method == "POST" and len(rest) == 4 and rest[3] == "compose":
                return self._compose(bucket, rest[2], body)
            name = "/".join(rest[2:])
            if method == "GET":
                return self._get_object(bucket, name, query, headers)
            if method == "DELETE":
                return self._delete_object(bucket, name)
            if method in ("PATCH", "PUT"):
                return self._patch_object(bucket, name, body)
        raise errors.storage_error(404, "notFound", "Not Found")

    # -- authorisation -------------------------------------------------------------------------------------
    def _authenticate(self, authorization: str | None) -> None:
        if not authorization:
            if self.config.get("allow_anonymous_storage", True):
                self.log["principal"] = "anonymous"
                return
            raise errors.storage_unauthenticated()
        bearer = bearer_token(authorization)
        if bearer:
            self.log["token_fingerprint"] = fingerprint(bearer)
        caller = self.state.live_token(bearer)
        if caller is None:
            raise errors.storage_unauthenticated()
        self.caller = caller
        self.log["principal"] = caller.principal

    def _require(self, permission: str, bucket: str | None = None, kind: str = "object") -> None:
        if self.caller is None:
            return  # anonymous, allowed by allow_anonymous_storage
        bindings = list(self.config.get("project_iam", []))
        if bucket is not None:
            bindings += (self.config["buckets"].get(bucket) or {}).get("iam", [])
        for binding in bindings:
            if permission in ROLE_PERMISSIONS.get(binding["role"], set()) and \
                    self.caller.members & set(binding["members"]):
                return
        raise errors.storage_forbidden(self.caller.principal, permission, kind)

    def _bucket(self, name: str) -> StoredBucket:
        with self.state.lock:
            bucket = self.state.buckets.get(name)
        if bucket is None:
            raise errors.storage_error(404, "notFound", "The specified bucket does not exist.")
        return bucket

    def _object(self, bucket: StoredBucket, name: str) -> StoredObject:
        obj = bucket.objects.get(name)
        if obj is None:
            raise errors.storage_error(404, "notFound", f"No such object: {bucket.name}/{name}")
        return obj

    # -- buckets -------------------------------------------------------------------------------------------
    def _bucket_resource(self, bucket: StoredBucket) -> dict[str, Any]:
        created = rfc3339(bucket.created, millis=True)
        return {"kind": "storage#bucket", "id": bucket.name, "name": bucket.name,
                "selfLink": f"{self.base_url}/storage/v1/b/{bucket.name}",
                "projectNumber": self.config["project_number"], "metageneration": "1",
                "location": bucket.extra.get("location", "US"), "locationType": "multi-region",
                "storageClass": bucket.extra.get("storageClass", "STANDARD"), "etag": "CAE=",
                "timeCreated": created, "updated": created,
                "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": True}}}

    def _check_project(self, query: dict[str, str]) -> None:
        if query.get("project") not in (self.config["project_id"], self.config["project_number"]):
            raise errors.storage_error(400, "invalid", "Unknown project id: " + str(query.get("project")))

    def _list_buckets(self, query: dict[str, str]) -> Reply:
        self._check_project(query)
        self._require("storage.buckets.list", kind="project")
        prefix = query.get("prefix", "")
        with self.state.lock:
            buckets = [b for n, b in sorted(self.state.buckets.items()) if n.startswith(prefix)]
        return Reply(200, {"kind": "storage#buckets", "items": [self._bucket_resource(b) for b in buckets]})

    def _insert_bucket(self, query: dict[str, str], body: bytes) -> Reply:
        self._check_project(query)
        self._require("storage.buckets.create", kind="project")
        spec = _json_body(body)
        name = spec.get("name")
        if not isinstance(name, str) or not _BUCKET_NAME.match(name):
            raise errors.storage_error(400, "invalid", f"Invalid bucket name: '{name}'")
        with self.state.lock:
            if name in self.state.buckets:
                raise errors.storage_error(409, "conflict", "Your previous request to create the named bucket "
                                                            "succeeded and you already own it.")
            bucket = StoredBucket(name=name, created=self.state.now(),
                                  extra={k: spec[k] for k in ("location", "storageClass") if k in spec})
            self.state.buckets[name] = bucket
        return Reply(200, self._bucket_resource(bucket))

    def _get_bucket(self, name: str) -> Reply:
        bucket = self._bucket(name)
        self._require("storage.buckets.get", name, "bucket")
        return Reply(200, self._bucket_resource(bucket))

    def _delete_bucket(self, name: str) -> Reply:
        bucket = self._bucket(name)
        self._require("storage.buckets.delete", name, "bucket")
        with self.state.lock:
            if bucket.objects:
                raise errors.storage_error(409, "conflict", "The bucket you tried to delete is not empty.")
            self.state.buckets.pop(name, None)
        return Reply(204, None)

    # -- objects -------------------------------------------------------------------------------------------
    def _object_resource(self, bucket: str, name: str, obj: StoredObject) -> dict[str, Any]:
        quoted = urllib.parse.quote(name, safe="")
        generation = obj.metadata["generation"]
        resource = {
            "kind": "storage#object", "id": f"{bucket}/{name}/{generation}",
            "selfLink": f"{self.base_url}/storage/v1/b/{bucket}/o/{quoted}",
            "mediaLink": f"{self.base_url}/download/storage/v1/b/{bucket}/o/{quoted}"
                         f"?generation={generation}&alt=media",
            "name": name, "bucket": bucket, "storageClass": "STANDARD", "size": str(len(obj.data)),
            "etag": _b64(str(generation).encode()),
        }
        resource.update(obj.metadata)
        return resource

    def _store(self, bucket_name: str, name: str, data: bytes, metadata: dict[str, Any],
               query: dict[str, str]) -> Reply:
        if not name:
            raise errors.storage_error(400, "required", "Required")
        bucket = self._bucket(bucket_name)
        self._require("storage.objects.create", bucket_name)
        with self.state.lock:
            existing = bucket.objects.get(name)
        if existing is not None:
            self._require("storage.objects.delete", bucket_name)
        if "ifGenerationMatch" in query:
            current = existing.metadata["generation"] if existing else "0"
            if str(query["ifGenerationMatch"]) != str(current):
                raise errors.storage_error(412, "conditionNotMet",
                                           "At least one of the pre-conditions you specified did not hold.",
                                           locationType="header", location="If-Match")
        now = rfc3339(self.state.now(), millis=True)
        stored_metadata = {
            "contentType": metadata.get("contentType") or "application/octet-stream",
            "generation": str(next(_generation) + int(self.state.now() * 1000) * 1000),
            "metageneration": "1",
            "md5Hash": _b64(hashlib.md5(data).digest()),  # noqa: S324 - GCS's own checksum
            "crc32c": _b64(crc32c(data).to_bytes(4, "big")),
            "timeCreated": now, "updated": now, "timeStorageClassUpdated": now,
        }
        for key in ("metadata", "cacheControl", "contentDisposition", "contentEncoding", "contentLanguage"):
            if metadata.get(key) is not None:
                stored_metadata[key] = metadata[key]
        obj = StoredObject(data=data, metadata=stored_metadata)
        with self.state.lock:
            bucket.objects[name] = obj
        return Reply(200, self._object_resource(bucket_name, name, obj))

    def _upload(self, method: str, bucket: str, query: dict[str, str], headers: Any, body: bytes) -> Reply:
        upload_type = query.get("uploadType", "media")
        if upload_type == "media":
            return self._store(bucket, query.get("name", ""), body,
                               {"contentType": headers.get("Content-Type")}, query)
        if upload_type == "multipart":
            metadata, data, media_type = _parse_multipart(headers.get("Content-Type", ""), body)
            metadata.setdefault("contentType", media_type)
            return self._store(bucket, query.get("name") or metadata.get("name", ""), data, metadata, query)
        if upload_type == "resumable":
            if method == "POST":
                return self._start_resumable(bucket, query, headers, body)
            return self._continue_resumable(query.get("upload_id", ""), headers, body)
        raise errors.storage_error(400, "invalid", f"Invalid upload type: {upload_type}")

    def _start_resumable(self, bucket: str, query: dict[str, str], headers: Any, body: bytes) -> Reply:
        self._bucket(bucket)
        self._require("storage.objects.create", bucket)
        metadata = _json_body(body)
        metadata.setdefault("contentType", headers.get("X-Upload-Content-Type"))
        name = query.get("name") or metadata.get("name", "")
        upload_id = secrets.token_urlsafe(16)
        with self.state.lock:
            self.state.uploads[upload_id] = {"bucket": bucket, "name": name, "metadata": metadata,
                                             "query": dict(query), "data": b""}
        location = (f"{self.base_url}/upload/storage/v1/b/{bucket}/o?uploadType=resumable"
                    f"&upload_id={upload_id}")
        return Reply(200, b"", {"Location": location, "X-GUploader-UploadID": upload_id})

    def _continue_resumable(self, upload_id: str, headers: Any, body: bytes) -> Reply:
        with self.state.lock:
            upload = self.state.uploads.get(upload_id)
        if upload is None:
            raise errors.storage_error(404, "notFound", "No such upload")
        content_range = headers.get("Content-Range", "")
        total: int | None = None
        match = re.match(r"^bytes (\*|(\d+)-(\d+))/(\*|\d+)$", content_range.strip())
        if match:
            if match.group(4) != "*":
                total = int(match.group(4))
            if match.group(2) is not None and int(match.group(2)) == len(upload["data"]):
                upload["data"] += body
        elif not content_range:
            upload["data"] += body
            total = len(upload["data"])
        if total is not None and len(upload["data"]) >= total:
            with self.state.lock:
                self.state.uploads.pop(upload_id, None)
            query = upload["query"]
            return self._store(upload["bucket"], upload["name"], upload["data"][:total], upload["metadata"],
                               query)
        reply_headers = {"Range": f"bytes=0-{len(upload['data']) - 1}"} if upload["data"] else {}
        return Reply(308, b"", reply_headers)

    def _get_object(self, bucket_name: str, name: str, query: dict[str, str], headers: Any) -> Reply:
        bucket = self._bucket(bucket_name)
        self._require("storage.objects.get", bucket_name)
        obj = self._object(bucket, name)
        if "generation" in query and str(query["generation"]) != obj.metadata["generation"]:
            raise errors.storage_error(404, "notFound", f"No such object: {bucket_name}/{name}")
        if query.get("alt") != "media":
            return Reply(200, self._object_resource(bucket_name, name, obj))
        reply_headers = {"Content-Type": obj.metadata["contentType"],
                         "X-Goog-Generation": obj.metadata["generation"], "X-Goog-Metageneration": "1",
                         "X-Goog-Stored-Content-Length": str(len(obj.data))}
        byte_range = re.match(r"^bytes=(\d*)-(\d*)$", headers.get("Range", "").strip())
        if byte_range and (byte_range.group(1) or byte_range.group(2)):
            size = len(obj.data)
            first, last = byte_range.groups()
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            else:
                start, end = max(size - int(last), 0), size - 1
            if size and start >= size:
                raise errors.storage_error(416, "requestedRangeNotSatisfiable",
                                           "The requested range cannot be satisfied.")
            reply_headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            return Reply(206, obj.data[start:end + 1], reply_headers)
        reply_headers["X-Goog-Hash"] = f"crc32c={obj.metadata['crc32c']},md5={obj.metadata['md5Hash']}"
        return Reply(200, obj.data, reply_headers)

    def _list_objects(self, bucket_name: str, query: dict[str, str]) -> Reply:
        bucket = self._bucket(bucket_name)
        self._require("storage.objects.list", bucket_name, "bucket")
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        start, end = query.get("startOffset", ""), query.get("endOffset", "")
        glob = query.get("matchGlob")
        with self.state.lock:
            names = sorted(bucket.objects)
        entries: list[tuple[str, str]] = []  # (kind, name) in name order; prefixes once each
        seen_prefixes: set[str] = set()
        for name in names:
            if not name.startswith(prefix) or (start and name < start) or (end and name >= end):
                continue
            if glob and not _glob_match(glob, name):
                continue
            if delimiter:
                cut = name.find(delimiter, len(prefix))
                if cut >= 0:
                    folded = name[: cut + len(delimiter)]
                    if folded not in seen_prefixes:
                        seen_prefixes.add(folded)
                        entries.append(("prefix", folded))
                    if query.get("includeTrailingDelimiter") != "true" or name != folded:
                        continue
            entries.append(("object", name))
        offset = int(base64.urlsafe_b64decode(query["pageToken"]).decode()) if query.get("pageToken") else 0
        page_size = max(1, min(int(query.get("maxResults") or 1000), 1000))
        page = entries[offset: offset + page_size]
        result: dict[str, Any] = {"kind": "storage#objects"}
        items = [self._object_resource(bucket_name, n, bucket.objects[n]) for k, n in page
                 if k == "object" and n in bucket.objects]
        prefixes = [n for k, n in page if k == "prefix"]
        if items:
            result["items"] = items
        if prefixes:
            result["prefixes"] = prefixes
        if offset + page_size < len(entries):
            result["nextPageToken"] = base64.urlsafe_b64encode(str(offset + page_size).encode()).decode()
        return Reply(200, result)

    def _delete_object(self, bucket_name: str, name: str) -> Reply:
        bucket = self._bucket(bucket_name)
        self._require("storage.objects.delete", bucket_name)
        with self.state.lock:
            self._object(bucket, name)
            del bucket.objects[name]
        return Reply(204, None)

    def _patch_object(self, bucket_name: str, name: str, body: bytes) -> Reply:
        bucket = self._bucket(bucket_name)
        self._require("storage.objects.update", bucket_name)
        patch = _json_body(body)
        with self.state.lock:
            obj = self._object(bucket, name)
            for key in ("contentType", "cacheControl", "contentDisposition", "contentEncoding", "contentLanguage"):
                if key in patch:
                    obj.metadata[key] = patch[key]
            if isinstance(patch.get("metadata"), dict):
                merged = {**obj.metadata.get("metadata", {}), **patch["metadata"]}
                obj.metadata["metadata"] = {k: v for k, v in merged.items() if v is not None}
            obj.metadata["metageneration"] = str(int(obj.metadata["metageneration"]) + 1)
            obj.metadata["updated"] = rfc3339(self.state.now(), millis=True)
        return Reply(200, self._object_resource(bucket_name, name, obj))

    def _copy(self, src_bucket: str, src_name: str, dst_bucket: str, dst_name: str, body: bytes,
              rewrite: bool) -> Reply:
        source_bucket = self._bucket(src_bucket)
        self._require("storage.objects.get", src_bucket)
        source = self._object(source_bucket, src_name)
        overrides = _json_body(body)
        metadata = {k: v for k, v in source.metadata.items()
                    if k in ("contentType", "metadata", "cacheControl", "contentDisposition", "contentEncoding",
                             "contentLanguage")}
        metadata.update({k: v for k, v in overrides.items() if v is not None})
        reply = self._store(dst_bucket, dst_name, source.data, metadata, {})
        if not rewrite:
            return reply
        size = str(len(source.data))
        return Reply(200, {"kind": "storage#rewriteResponse", "totalBytesRewritten": size, "objectSize": size,
                           "done": True, "resource": reply.body})

    def _compose(self, bucket_name: str, dst_name: str, body: bytes) -> Reply:
        bucket = self._bucket(bucket_name)
        self._require("storage.objects.get", bucket_name)
        spec = _json_body(body)
        data = b"".join(self._object(bucket, str(s.get("name"))).data for s in spec.get("sourceObjects", []))
        return self._store(bucket_name, dst_name, data, spec.get("destination") or {}, {})


def _json_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        raise errors.storage_error(400, "parseError", "Parse Error") from None
    if not isinstance(value, dict):
        raise errors.storage_error(400, "parseError", "Parse Error")
    return value


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes, str]:
    """``multipart/related``: a JSON metadata part, then the media part."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise errors.storage_error(400, "invalid", "Missing multipart boundary")
    delimiter = b"--" + match.group(1).encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, _, content = chunk.partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        part_type = ""
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-type":
                part_type = value.strip()
        parts.append((part_type, content))
    if len(parts) != 2:
        raise errors.storage_error(400, "invalid", "Expected a metadata part and a media part")
    return _json_body(parts[0][1]), parts[1][1], parts[1][0] or "application/octet-stream"


def _glob_match(pattern: str, name: str) -> bool:
    regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return re.fullmatch(regex, name) is not None
