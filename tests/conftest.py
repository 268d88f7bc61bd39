import asyncio
import asyncio.runners

import django_rq
import pytest
from channels.layers import channel_layers
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User

from resync import demo
from resync.catalog import load_catalog
from resync.models import District, DistrictRecord, School, State, SyncObject, SyncObjectParent
from runner import jobs

BOTH = ["default", "state"]

# Plain `db` (each test in a transaction rolled back) is the default; this mark is for
# a test whose rows must really be committed: a worker runs its jobs (RQ enqueues a job
# when the transaction commits, and the worker closes the connection around each job),
# another thread or process reads its rows, or a websocket consumer reads them through
# database_sync_to_async, on another thread. Its databases are flushed after it, and
# seed() puts the catalog and groups back for the next one.
COMMITTED = pytest.mark.django_db(transaction=True, databases=BOTH)


# Jobs run in this process by run_queue() must not lower the test runner's own
# CPU priority, nor with it that of every server and worker it starts.
settings.RESYNC_WORKER_NICE = 0

# Most tests hold a step to its own RQ job (its id, its recovery, a worker per step);
# tests/test_one_job.py runs small districts' requests in one job, as production does
# below RESYNC_ONE_JOB_RECORDS, and the servers and workers tests start keep the default.
settings.RESYNC_ONE_JOB_RECORDS = 0

# The webhook tests' receivers listen on loopback, which production refuses to POST to
# (notify.signing); tests/test_webhook_safety.py turns it off again to check that.
settings.WEBHOOK_ALLOW_PRIVATE = True


class OneRoundPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """PBKDF2 at one round: at Django's million, the cast's four users took about ten
    seconds of every test's setup on this machine. A hash names its own rounds, so
    the servers and workers the tests start check these with their default hasher."""

    iterations = 1


settings.PASSWORD_HASHERS = ["tests.conftest.OneRoundPBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]


def _cancel_until_done(loop, _cancel_all_tasks=asyncio.runners._cancel_all_tasks) -> None:
    """asyncio.Runner's teardown, cancelling again what did not end at the first cancel.

    A consumer a test leaves connected still waits on the channel layer's BZPOPMIN
    when its test's loop closes. Cancelled there, redis-py's read sometimes ends in
    its own timeout path instead of the cancellation, and channels-redis' receive
    then simply reads again: the Runner waited for it forever (the SQLite suite hung
    at a test's teardown). Cancelling again ends it; the rounds are bounded."""
    for _ in range(20):
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if not tasks:
            break
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.wait(tasks, timeout=1))
    _cancel_all_tasks(loop)


asyncio.runners._cancel_all_tasks = _cancel_until_done


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test gets a channel layer of its own, as each process has in production.

    pytest-asyncio gives every test its own event loop, and channels-redis keeps
    receive state (a lock, counters, per-channel locks) on the layer object: a
    receive cut off when one test's loop closed left that state taken, and a later
    test's consumer then waited on it forever (a hang at the loop's teardown)."""
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}


@pytest.fixture
def python_path(settings):
    """Steps judged in Python whatever the database (runner.engine's chunks, runner.batch's
    batches), for a test of those paths' own parts; on PostgreSQL the bulk path is the
    default (runner.bulk, tested in tests/test_bulk.py)."""
    settings.RESYNC_BULK = False


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.org", "pw")


@pytest.fixture
def queue():
    """The real RQ queue on the real Redis, emptied before and after each test."""
    q = django_rq.get_queue(settings.RQ_QUEUE)

    def empty() -> None:
        q.empty()
        # Ids start again in each test's databases: an enqueue claim (runner.jobs) must not outlive its test.
        for key in q.connection.scan_iter(jobs.enqueue_claim_key("*")):
            q.connection.delete(key)

    empty()
    yield q
    empty()


def run_queue() -> None:
    """Run every queued job in this process, as a worker would, until the queue is empty."""
    django_rq.get_worker(settings.RQ_QUEUE).work(burst=True, logging_level="WARNING")


def seed() -> None:
    """Put back what the data migrations seed (the catalog, the two groups and every
    right they hold) if a transactional test's flush removed it; else nothing.

    A plain `db` test finds the seed as the migrations left it and rolls back what it
    changes. pytest-django runs every plain test before the transactional ones, so
    only those pay for this, once per test, after the previous one's flush.

    Not serialized_rollback: it restores the content types under their old keys, and
    a test that migrates (test_groups) leaves the flush's post_migrate new ones to
    collide with; measured under load, it saved about 0.7 s a transactional test."""
    from django.contrib.auth.models import Group, Permission

    from resync import groups
    from resync.field_catalog import load_field_catalog
    from resync.models import SyncField, SyncObjectGroupObjectPermission

    if SyncObject.objects.exists():
        return
    load_catalog(SyncObject, SyncObjectParent)
    load_field_catalog(SyncObject, SyncField)
    groups.create_groups(Group, Permission, SyncObject, SyncObjectGroupObjectPermission)
    groups.grant_tool_perms(Group, Permission)
    groups.grant(Group, Permission, {groups.STATE_ADMINS: groups.LOAD_STATE_PERMS})  # loads 0002


@pytest.fixture
def catalog(db) -> None:
    """The catalog and the groups, as the migrations seeded them. Plain `db` unless the
    test's django_db mark asks for transaction=True."""
    seed()


@pytest.fixture
def district(catalog):
    state = State.objects.create(code="KY", name="Kentucky", edition="KY")
    d = District.objects.create(
        state=state, code="101", name="Adair County", scope_year=2027, sync_next_year=True
    )
    School.objects.create(district=d, number="001", name="Adair High")
    return d


@pytest.fixture
def other_district(district):
    return District.objects.create(state=district.state, code="202", name="Boone County", scope_year=2027)


def add(
    district, obj: str, rid: int, parents=None, payload=None, year=2027, excluded=False
) -> DistrictRecord:
    so = SyncObject.objects.get(name=obj)
    return DistrictRecord.objects.create(
        district=district,
        sync_object=so,
        record_id=rid,
        parent_ids=parents or {},
        payload=payload or {},
        school_year=year if so.year_scoped else None,
        state_excluded=excluded,
    )


def chain(district) -> None:
    """District 1 > School 1 > Calendar 1 > ScheduleStructure 1 > PersonIdentity 1."""
    add(district, "District", 1)
    add(district, "School", 1, {"District": 1})
    add(district, "Calendar", 1, {"School": 1})
    add(district, "ScheduleStructure", 1, {"Calendar": 1})
    add(district, "PersonIdentity", 1, {"ScheduleStructure": 1})


@pytest.fixture
def demo_district(catalog):
    _state, (d,) = demo.build_state("tiny")
    expected = demo.load_district(d, demo.SIZES["tiny"][1])
    return d, expected


class Cast:
    """The fixed cast every rights test uses (healthchecks' alice/bob/charlie)."""

    def __init__(self, district, other):
        from django.contrib.auth.models import Group
        from guardian.shortcuts import assign_perm

        from resync import groups as seeded
        from resync import rights

        def user(name, *groups, staff=True):
            u = User.objects.create_user(name, f"{name}@example.org", "pw", is_staff=staff)
            for g in groups:
                u.groups.add(Group.objects.get(name=g))
            return u

        self.district, self.other = district, other
        self.stella = user("stella", seeded.STATE_ADMINS)
        self.alice = user("alice", seeded.DISTRICT_ADMINS)
        assign_perm(rights.DISTRICT, self.alice, district)
        # Bob may resync the district, but only Enrollment and PersonIdentity.
        self.bob = user("bob")
        assign_perm(rights.DISTRICT, self.bob, district)
        for name in ("Enrollment", "PersonIdentity"):
            assign_perm(rights.OBJECT, self.bob, SyncObject.objects.get(name=name))
        self.charlie = user("charlie", seeded.DISTRICT_ADMINS)
        assign_perm(rights.DISTRICT, self.charlie, other)


@pytest.fixture
def cast(district, other_district):
    from django.contrib.auth.models import Group, Permission

    from resync import groups
    from resync.models import SyncObjectGroupObjectPermission

    # The groups hold their base rights only, as resync 0005 shipped them: a test of
    # the tools' rights asks for tool_cast, so a cast test never passes on them.
    groups.create_groups(Group, Permission, SyncObject, SyncObjectGroupObjectPermission)
    return Cast(district, other_district)


@pytest.fixture
def tool_cast(cast):
    """The cast with the groups' Verification Summary, Selective Sync and year switch
    rights, which a later migration grants (cast takes them away)."""
    from django.contrib.auth.models import Group, Permission

    from resync import groups

    groups.grant_tool_perms(Group, Permission)
    return cast


@pytest.fixture
def back_to_the_latest():
    """For a test that migrates an app back: every app forward again afterwards. Going back
    also unapplies the later migrations of other apps that depend on it (verification 0003
    takes resync's field schemas with it), and the tests after it would find their tables
    and columns gone."""
    yield
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
