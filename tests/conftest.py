import pytest
from django.contrib.auth.models import User


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.org", "pw")
