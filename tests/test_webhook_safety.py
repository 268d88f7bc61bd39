"""Webhooks POST to public addresses only (SSRF), judged when saved and again when
posted; and a webhook's delayed retry runs on a worker started as bin/demo starts it
(`rqworker --with-scheduler`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from notify import jobs, signing
from notify.models import Delivery, Webhook
from statesync.env import child_env

from .conftest import BOTH, COMMITTED, add, run_queue
from .test_notify import FINISHED, Receiver, api, resync

pytestmark = pytest.mark.django_db(databases=BOTH)

REFUSED = [
    ("127.0.0.1", "a loopback address"),
    ("127.8.9.10", "a loopback address"),
    ("::1", "a loopback address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fc00::1", "a private address"),
    ("169.254.169.254", "a link-local address"),  # the cloud's metadata service
    ("fe80::1", "a link-local address"),
    ("fe80::1%eth0", "a link-local address"),
    ("224.0.0.1", "a multicast address"),
    ("239.1.2.3", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("100.64.0.1", "not a public address"),  # carrier-grade NAT
    ("::ffff:127.0.0.1", "a loopback address"),  # IPv4-mapped IPv6
    ("::ffff:169.254.169.254", "a link-local address"),
    ("::ffff:10.0.0.1", "a private address"),
    ("2002:7f00:1::1", "a loopback address"),  # 6to4 of 127.0.0.1
    ("64:ff9b::a00:1", "a private address"),  # NAT64 of 10.0.0.1
    ("::127.0.0.1", "a reserved address"),  # the old IPv4-compatible form
    ("example.org", "not an IP address"),
]
ALLOWED = ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address, why", REFUSED)
def test_it_refuses_every_address_that_is_not_public(address, why):
    assert signing.address_refusal(address) == why


@pytest.mark.parametrize("address", ALLOWED)
def test_it_allows_a_public_address(address):
    assert signing.address_refusal(address) == ""


@pytest.fixture
def strict(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False  # production's default (the suite turns it on)


BAD = [
    ("http://127.0.0.1:9/hook", "points at 127.0.0.1, a loopback address"),
    ("http://[::ffff:169.254.169.254]/latest", "points at ::ffff:169.254.169.254, a link-local address"),
    ("http://localhost:9/", "points at localhost ("),  # 127.0.0.1 or ::1, whichever the resolver gives first
    ("https://10.0.0.5/in", "points at 10.0.0.5, a private address"),
    ("ftp://8.8.8.8/", "is not an http:// or https:// address"),
]


@pytest.mark.parametrize("url, said", BAD)
def test_it_refuses_a_webhook_to_an_internal_address_by_the_api_and_the_admin_alike(
    client, cast, strict, url, said
):
    made = api(
        client, cast.alice, "post", "/api/v1/webhooks/", {"district": "101", "url": url, "names": [FINISHED]}
    )
    assert made.status_code == 400, made.content
    (message,) = made.json()["url"]
    assert said in message and (url.startswith("ftp") or "may only POST to a public address" in message)
    client.force_login(cast.alice)
    page = client.post(
        "/admin/notify/webhook/add/",
        {"district": cast.district.pk, "url": url, "names": [FINISHED], "active": "on"},
    )
    assert page.status_code == 200
    if url.startswith("http"):  # the admin's URLField names another scheme its own way first
        assert message.replace("'", "&#x27;") in page.content.decode()
    assert not Webhook.objects.exists()


def test_it_refuses_changing_a_webhook_to_an_internal_address(client, cast, strict):
    hook = Webhook.objects.create(district=cast.district, url="https://93.184.215.14/in", names=[FINISHED])
    changed = api(client, cast.alice, "patch", f"/api/v1/webhooks/{hook.pk}/", {"url": "http://192.168.1.1/"})
    assert changed.status_code == 400 and "a private address" in changed.json()["url"][0]
    hook.refresh_from_db()
    assert hook.url == "https://93.184.215.14/in"


def test_it_saves_a_webhook_to_a_public_address(client, cast, strict):
    url = "https://93.184.215.14/in"
    made = api(
        client, cast.alice, "post", "/api/v1/webhooks/", {"district": "101", "url": url, "names": [FINISHED]}
    )
    assert made.status_code == 201, made.content


def test_it_lets_a_private_address_through_when_the_setting_allows_it(client, cast):
    assert settings.WEBHOOK_ALLOW_PRIVATE  # tests/conftest.py, for the loopback receivers
    made = api(
        client,
        cast.alice,
        "post",
        "/api/v1/webhooks/",
        {"district": "101", "url": "http://10.0.0.5/", "names": [FINISHED]},
    )
    assert made.status_code == 201, made.content


@COMMITTED  # a worker runs the jobs: the rows are committed
def test_it_refuses_at_delivery_a_name_that_now_resolves_to_loopback(
    client, cast, queue, strict, monkeypatch, settings
):
    settings.NOTIFY_RETRY_INTERVALS = [0, 0, 0]  # a refusal retried would be posted again at once
    with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "hooks.example.org")
        # Saved while its name resolved to a public address; by the POST, DNS answers loopback.
        monkeypatch.setattr(signing, "resolved", lambda host, port=None: ["93.184.215.14"])
        made = api(
            client,
            cast.alice,
            "post",
            "/api/v1/webhooks/",
            {"district": "101", "url": url, "names": [FINISHED]},
        )
        assert made.status_code == 201, made.content
        real = jobs.socket.getaddrinfo
        monkeypatch.setattr(
            jobs.socket,
            "getaddrinfo",
            lambda host, *a, **k: real("127.0.0.1" if host == "hooks.example.org" else host, *a, **k),
        )
        add(cast.district, "District", 1)
        resync(cast.district, cast.alice)
        run_queue()
    assert receiver.posts == []
    (delivery,) = Delivery.objects.all()  # once: not retried
    assert delivery.status_code is None and not delivery.ok
    assert (
        delivery.error == "Refused, not retried: hooks.example.org resolves to 127.0.0.1, a loopback address"
    )
    client.force_login(cast.alice)
    assert "Refused, not retried" in client.get("/admin/notify/delivery/").content.decode()


@COMMITTED  # a worker runs the jobs: the rows are committed
def test_it_refuses_at_delivery_a_webhook_saved_before_the_check(client, cast, queue, strict):
    with Receiver() as receiver:
        Webhook.objects.create(district=cast.district, url=receiver.url, names=[FINISHED])  # as by SQL
        Webhook.objects.create(district=cast.district, url="file:///etc/passwd", names=[FINISHED])
        add(cast.district, "District", 1)
        resync(cast.district, cast.alice)
        run_queue()
    assert receiver.posts == []
    errors = sorted(Delivery.objects.values_list("error", flat=True))
    assert errors == [
        "Refused, not retried: 'file:///etc/passwd' is not an http:// or https:// address",
        "Refused, not retried: 127.0.0.1 is a loopback address",
    ]


@COMMITTED  # a worker runs the jobs: the rows are committed
def test_it_still_posts_to_loopback_when_the_setting_allows_it(client, cast, queue):
    with Receiver() as receiver:
        Webhook.objects.create(district=cast.district, url=receiver.url, names=[FINISHED])
        add(cast.district, "District", 1)
        resync(cast.district, cast.alice)
        run_queue()
    assert len(receiver.posts) == 1
    assert list(Delivery.objects.values_list("status_code", "error")) == [(204, "")]


@pytest.fixture
def scheduled(queue):
    """The queue's scheduled registry (delayed retries), empty before and after: the
    queue fixture empties the queue alone, and a failed test's retry would stay."""
    registry = queue.scheduled_job_registry

    def empty() -> None:
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)

    empty()
    yield registry
    empty()


def demo_flags() -> list[str]:
    """The flags bin/demo starts its worker with."""
    script = (Path(__file__).resolve().parent.parent / "bin" / "demo").read_text()
    (line,) = re.findall(r"^\$py manage\.py rqworker (.*)&$", script, re.M)
    return [f for f in line.split() if f.startswith("--")]


def worker(*flags: str) -> None:
    """A real `manage.py rqworker`, in burst mode so that it ends."""
    call_command("rqworker", settings.RQ_QUEUE, "--burst", *flags, verbosity=0)


@COMMITTED
def test_it_runs_a_delayed_retry_on_a_worker_started_with_the_scheduler(client, cast, scheduled, settings):
    settings.NOTIFY_RETRY_INTERVALS = [10]  # a real delay: RQ schedules the retry, not enqueues it
    demo = demo_flags()
    assert demo == ["--with-scheduler"]
    with Receiver(failures=1) as receiver:
        Webhook.objects.create(district=cast.district, url=receiver.url, names=[FINISHED])
        add(cast.district, "District", 1)
        resync(cast.district, cast.alice)
        worker(*demo)
        assert len(receiver.posts) == 1  # the first POST, answered 500
        registry = scheduled
        (waiting,) = registry.get_job_ids()
        # The ten seconds pass (set as due now, rather than waited for).
        registry.schedule(registry.get_queue().fetch_job(waiting), datetime.now(UTC))
        worker()  # no scheduler: nothing moves the due retry onto the queue
        assert len(receiver.posts) == 1 and registry.get_job_ids() == [waiting]
        worker(*demo)  # as bin/demo starts it: its scheduler enqueues the retry, which runs
    assert len(receiver.posts) == 2
    assert list(Delivery.objects.order_by("attempt").values_list("attempt", "status_code")) == [
        (1, 500),
        (2, 204),
    ]
    assert registry.get_job_ids() == []


@COMMITTED
def test_it_runs_a_delayed_retry_on_a_long_running_worker_started_as_bin_demo_starts_it(
    client, cast, scheduled, settings
):
    settings.NOTIFY_RETRY_INTERVALS = [10]
    with Receiver(failures=1) as receiver:
        Webhook.objects.create(district=cast.district, url=receiver.url, names=[FINISHED])
        add(cast.district, "District", 1)
        resync(cast.district, cast.alice)
        worker()  # the step and the first POST, answered 500; the retry is scheduled
        registry = scheduled
        (waiting,) = registry.get_job_ids()
        registry.schedule(registry.get_queue().fetch_job(waiting), datetime.now(UTC))  # due now
        # bin/demo's own command line (not burst): RQ's scheduler runs in a process of its own.
        args = [sys.executable, "manage.py", "rqworker", *demo_flags(), settings.RQ_QUEUE]
        child = subprocess.Popen(
            args,
            cwd=Path(__file__).resolve().parent.parent,
            # Not niced: on a busy machine a niced worker waits behind everything else.
            env=child_env(WEBHOOK_ALLOW_PRIVATE="true", RESYNC_WORKER_NICE="0"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a group of its own: killed with its scheduler if need be
        )
        try:
            # A bound on waiting for the second POST, not a measure of anything.
            deadline = time.monotonic() + 180
            while len(receiver.posts) < 2 and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            child.terminate()  # RQ's warm shutdown, its scheduler process too
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                # Never left running: it would hold the test databases for the tests after.
                os.killpg(child.pid, signal.SIGKILL)  # its scheduler process with it
                child.wait()
    assert len(receiver.posts) == 2
    assert list(Delivery.objects.order_by("attempt").values_list("attempt", "status_code")) == [
        (1, 500),
        (2, 204),
    ]
