"""Emulated Cloud Storage: stock clients work through STORAGE_EMULATOR_HOST, and every call is authorised by a
live emulator token holding a role on the bucket."""

from __future__ import annotations

import asyncio
import os

import pytest
import requests
from google.api_core import exceptions
from google.oauth2.credentials import Credentials as BearerCredentials
from wif_chain import (
    assume_role,
    federated_token,
    google_credentials,
    refreshed,
    service_account_token,
    storage_get,
)


@pytest.fixture
def storage_env(emulator, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.info["storage_host"])
    return emulator


def _client(info, token):
    from google.cloud import storage

    return storage.Client(credentials=BearerCredentials(token), project=info["project_id"])


def test_google_cloud_storage_round_trip_with_impersonated_credentials(storage_env):
    from google.cloud import storage

    info = storage_env.info
    credentials = refreshed(google_credentials(info, assume_role(info), impersonate=info["service_account"]))
    client = storage.Client(credentials=credentials, project=info["project_id"])
    bucket = client.bucket(info["bucket"])

    bucket.blob("reports/2024/a.csv").upload_from_string(b"a,b\n1,2\n", content_type="text/csv")
    bucket.blob("reports/2024/b.csv").upload_from_string(b"x")
    bucket.blob("top.txt").upload_from_string(b"top")
    large = os.urandom(5 * 1024 * 1024 + 17)
    bucket.blob("large.bin", chunk_size=2 * 1024 * 1024).upload_from_string(large)  # resumable, in chunks

    assert [b.name for b in client.list_blobs(info["bucket"], prefix="reports/")] == [
        "reports/2024/a.csv", "reports/2024/b.csv"]
    listing = client.list_blobs(info["bucket"], delimiter="/")
    assert [b.name for b in listing] == ["large.bin", "top.txt"]
    assert listing.prefixes == {"reports/"}
    assert [b.name for b in client.list_blobs(info["bucket"], max_results=2, page_size=1)] == [
        "large.bin", "reports/2024/a.csv"]
    blob = bucket.get_blob("reports/2024/a.csv")
    assert blob.content_type == "text/csv" and blob.size == 8
    assert blob.download_as_bytes() == b"a,b\n1,2\n"
    assert bucket.blob("large.bin").download_as_bytes() == large

    bucket.copy_blob(blob, bucket, "copies/a.csv")
    bucket.blob("rewritten/a.csv").rewrite(blob)
    assert bucket.blob("copies/a.csv").download_as_bytes() == b"a,b\n1,2\n"
    assert bucket.blob("rewritten/a.csv").download_as_bytes() == b"a,b\n1,2\n"

    bucket.blob("top.txt").delete()
    with pytest.raises(exceptions.NotFound):
        bucket.blob("top.txt").download_as_bytes()
    assert {r["principal"] for r in storage_env.control.requests("storage")} == {info["service_account"]}


def test_buckets_are_created_listed_and_deleted_with_a_project_grant(storage_env):
    info = storage_env.info
    client = _client(info, service_account_token(info))

    client.create_bucket("wif-created-bucket")
    assert {b.name for b in client.list_buckets()} == {info["bucket"], "wif-created-bucket"}
    with pytest.raises(exceptions.Conflict):
        client.create_bucket("wif-created-bucket")
    client.bucket("wif-created-bucket").delete()
    assert {b.name for b in client.list_buckets()} == {info["bucket"]}


def test_bucket_create_without_a_project_grant_is_forbidden(storage_env):
    info = storage_env.info
    storage_env.control.set_project_iam([])

    with pytest.raises(exceptions.Forbidden):
        _client(info, service_account_token(info)).create_bucket("wif-other-bucket")


def test_unknown_bearer_is_unauthenticated_in_the_storage_error_shape(emulator):
    response = storage_get(emulator.info, f"b/{emulator.info['bucket']}/o", "ya29.not-a-real-token")

    assert response.status_code == 401
    assert response.json() == {"error": {"code": 401, "message": "Invalid Credentials", "errors": [{
        "message": "Invalid Credentials", "domain": "global", "reason": "authError", "locationType": "header",
        "location": "Authorization"}]}}


def test_expired_service_account_token_is_unauthenticated(emulator):
    info = emulator.info
    emulator.control.set_token_ttl(iam=30)
    token = service_account_token(info)
    assert storage_get(info, f"b/{info['bucket']}/o", token).status_code == 200

    emulator.control.advance_clock(31)

    assert storage_get(info, f"b/{info['bucket']}/o", token).status_code == 401


def test_principal_without_a_role_on_the_bucket_is_forbidden(emulator):
    info = emulator.info
    target_token = service_account_token(info, info["target_service_account"], bearer=service_account_token(info))

    response = storage_get(info, f"b/{info['bucket']}/o", target_token)

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["errors"][0]["reason"] == "forbidden"
    assert error["message"].startswith(f"{info['target_service_account']} does not have storage.objects.list access")


def test_object_viewer_reads_but_cannot_write(storage_env):
    info = storage_env.info
    target = info["target_service_account"]
    storage_env.control.set_bucket_iam(info["bucket"], "roles/storage.objectViewer", [f"serviceAccount:{target}"])
    admin = _client(info, service_account_token(info)).bucket(info["bucket"])
    admin.blob("shared.txt").upload_from_string(b"shared")
    viewer = _client(info, service_account_token(info, target, bearer=service_account_token(info)))

    assert viewer.bucket(info["bucket"]).blob("shared.txt").download_as_bytes() == b"shared"
    with pytest.raises(exceptions.Forbidden):
        viewer.bucket(info["bucket"]).blob("new.txt").upload_from_string(b"nope")


def test_federated_token_reads_directly_when_the_bucket_grants_its_principal_set(emulator):
    info = emulator.info
    principal_set = ("principalSet://iam.googleapis.com/projects/734501234567/locations/global/"
                     "workloadIdentityPools/aws-pool/attribute.aws_role/arn:aws:sts::123456789012:assumed-role/wif-role")
    token = federated_token(info)
    assert storage_get(info, f"b/{info['bucket']}/o", token).status_code == 403

    emulator.control.set_bucket_iam(info["bucket"], "roles/storage.objectViewer", [principal_set])

    assert storage_get(info, f"b/{info['bucket']}/o", token).status_code == 200


def test_requests_without_authorization_are_anonymous_unless_disabled(emulator):
    info = emulator.info
    assert storage_get(info, f"b/{info['bucket']}/o", None).status_code == 200
    assert emulator.control.requests("storage")[-1]["principal"] == "anonymous"

    emulator.control.configure({"allow_anonymous_storage": False})

    assert storage_get(info, f"b/{info['bucket']}/o", None).status_code == 401


def test_missing_object_and_bucket_are_not_found(emulator):
    info = emulator.info
    token = service_account_token(info)

    assert storage_get(info, f"b/{info['bucket']}/o/missing.txt", token).status_code == 404
    assert storage_get(info, "b/no-such-bucket", token).json()["error"]["message"] == (
        "The specified bucket does not exist.")


def test_gcloud_aio_storage_round_trip_without_a_token(storage_env):
    """gcloud-aio-storage sends no token under STORAGE_EMULATOR_HOST; such requests are served anonymously."""
    from gcloud.aio.storage import Storage

    info = storage_env.info

    async def round_trip():
        async with Storage() as client:
            await client.upload(info["bucket"], "aio/hello.txt", b"hello aio")
            listing = await client.list_objects(info["bucket"], params={"prefix": "aio/"})
            data = await client.download(info["bucket"], "aio/hello.txt")
            await client.delete(info["bucket"], "aio/hello.txt")
            return [item["name"] for item in listing["items"]], data

    names, data = asyncio.run(round_trip())

    assert names == ["aio/hello.txt"]
    assert data == b"hello aio"
    assert {r["principal"] for r in storage_env.control.requests("storage")} == {"anonymous"}


def test_resumable_upload_reports_progress_with_308(emulator):
    info = emulator.info
    headers = {"Authorization": f"Bearer {service_account_token(info)}"}
    start = requests.post(f"{info['storage_host']}/upload/storage/v1/b/{info['bucket']}/o",
                          params={"uploadType": "resumable", "name": "r.bin"}, json={}, headers=headers, timeout=30)
    location = start.headers["Location"]

    first = requests.put(location, data=b"abc", headers={**headers, "Content-Range": "bytes 0-2/*"}, timeout=30)
    last = requests.put(location, data=b"de", headers={**headers, "Content-Range": "bytes 3-4/5"}, timeout=30)

    assert first.status_code == 308 and first.headers["Range"] == "bytes=0-2"
    assert last.status_code == 200 and last.json()["size"] == "5"

