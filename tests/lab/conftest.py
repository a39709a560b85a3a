import pytest

from .support import wait_no_drill


@pytest.fixture
def ready(request):
    # wait for a running drill *before* healthy_lab looks: it rebuilds a lab it finds unhealthy for 5 s
    wait_no_drill()
    return request.getfixturevalue("healthy_lab")
