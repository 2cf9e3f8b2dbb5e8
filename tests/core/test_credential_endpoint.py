"""The loopback endpoint that gives child processes their AWS credentials answers only on loopback, only under its
random capability, only while it is open, and with the supplier's current credentials."""

from __future__ import annotations

import select
import socket
import threading
import urllib.parse

import pytest
import requests

from airflow_provider_gcp_wif.child_credentials import ENDPOINT_ROLE_NAME, credential_endpoint


def test_the_endpoint_serves_current_credentials_under_its_capability_only(role_supplier):
    supplier = role_supplier()
    with credential_endpoint(supplier) as url:
        parsed = urllib.parse.urlsplit(url)
        assert parsed.hostname == "127.0.0.1"
        capability = parsed.path.split("/")[1]
        assert len(capability) >= 43  # 32 random bytes, URL-safe base64
        assert requests.get(url, timeout=10).text == ENDPOINT_ROLE_NAME
        answer = requests.get(f"{url}/{ENDPOINT_ROLE_NAME}", timeout=10).json()
        expected = supplier.get_aws_security_credentials(None, None)
        assert (answer["AccessKeyId"], answer["SecretAccessKey"], answer["Token"]) == (
            expected.access_key_id, expected.secret_access_key, expected.session_token)
        origin = f"http://127.0.0.1:{parsed.port}"
        wrong = capability[:-1] + ("A" if capability[-1] != "A" else "B")
        for path in ("/latest/meta-data/iam/security-credentials", f"/latest/meta-data/iam/security-credentials/{ENDPOINT_ROLE_NAME}",
                     f"/{wrong}/latest/meta-data/iam/security-credentials/{ENDPOINT_ROLE_NAME}", f"/{capability}", "/"):
            response = requests.get(origin + path, timeout=10)
            assert response.status_code == 404 and expected.secret_access_key not in response.text, path
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)


# -- idle connections cannot pile up threads -----------------------------------------------------------------------


def _static_supplier():
    """A supplier with static keys: serving them needs no network, and starts no thread of its own."""
    import boto3

    from airflow_provider_gcp_wif.supplier import Boto3Supplier

    return Boto3Supplier(lambda: boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", region_name="us-east-1",
                                                       aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                         identity_key="static", description="static test keys")


def test_idle_connections_are_closed_after_the_read_timeout_and_hold_a_bounded_number_of_threads():
    """Any local user can connect (the capability only guards the answers): idle connections are closed after
    the read timeout, at most ``max_connections`` are served at once (each by one thread; the others wait in the
    listen backlog), and a request made behind a queue of idle connections still gets its answer."""
    cap = 4
    with credential_endpoint(_static_supplier(), read_timeout=0.2, max_connections=cap) as url:
        port = urllib.parse.urlsplit(url).port
        before = set(threading.enumerate())
        idle = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(3 * cap)]
        try:
            assert requests.get(url, timeout=60).text == ENDPOINT_ROLE_NAME
            # The idle connections were accepted before the request: every one that is still served has a thread.
            serving = [thread for thread in set(threading.enumerate()) - before if thread.is_alive()]
            assert len(serving) <= cap, serving
            for connection in idle:  # the server closes each one (60 s is only the test's generous deadline)
                assert connection.recv(1) == b""
        finally:
            for connection in idle:
                connection.close()


def test_a_request_is_answered_at_once_while_idle_connections_hold_fewer_than_the_cap():
    """The cap bounds threads, it does not serialise: with idle connections held (and a read timeout far longer
    than the client waits) a request still gets its answer."""
    with credential_endpoint(_static_supplier(), read_timeout=600, max_connections=4) as url:
        port = urllib.parse.urlsplit(url).port
        idle = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(3)]
        try:
            answer = requests.get(f"{url}/{ENDPOINT_ROLE_NAME}", timeout=60).json()
            assert answer["AccessKeyId"] == "AKIDEXAMPLE"
        finally:
            for connection in idle:
                connection.close()


def test_a_trickling_client_is_cut_off_at_the_request_deadline_and_frees_its_slot():
    """The read timeout bounds the whole request, not each read: clients that send one byte at a time, each well
    within the timeout, are cut off once it has passed since they connected; with every slot held by such clients
    a real request waits only until they are cut, then gets its answer."""
    cap = 2
    interval = 0.05  # between two bytes: a tenth of the timeout, so no single read ever times out
    budget = 200  # bytes each trickler sends at most (10 s): far beyond the 0.5 s the whole request may take
    with credential_endpoint(_static_supplier(), read_timeout=0.5, max_connections=cap) as url:
        port = urllib.parse.urlsplit(url).port
        tricklers = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(cap)]
        sent_when_cut: dict[int, int | None] = {}

        def trickle(index: int, connection: socket.socket) -> None:
            for sent in range(budget):
                readable, _, _ = select.select([connection], [], [], interval)
                try:
                    if readable:  # the server closed it (it answers a trickler nothing)
                        assert connection.recv(1) == b""
                        sent_when_cut[index] = sent
                        return
                    connection.sendall(b"G")
                except (ConnectionResetError, BrokenPipeError):
                    sent_when_cut[index] = sent
                    return
            sent_when_cut[index] = None

        threads = [threading.Thread(target=trickle, args=pair) for pair in enumerate(tricklers)]
        try:
            for thread in threads:
                thread.start()
            answer = requests.get(f"{url}/{ENDPOINT_ROLE_NAME}", timeout=60).json()
            assert answer["AccessKeyId"] == "AKIDEXAMPLE"
            for thread in threads:
                thread.join(timeout=60)
            assert len(sent_when_cut) == cap
            assert all(sent is not None and sent < budget for sent in sent_when_cut.values()), sent_when_cut
        finally:
            for connection in tricklers:
                connection.close()
