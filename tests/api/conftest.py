"""Black-box API suite: runs the real binary (STYLE 35).

Local mode (default): `formvault` from FORMVAULT_BIN (default
<repo>/build/formvault) on free ports with a temporary data dir.

Deployed mode: set FORMVAULT_URL (https://host:port of the public listener),
FORMVAULT_TOKEN (a token with every data and meta scope) and FORMVAULT_OWNER
(default "acme"), with tests/api/apps/test_app.json imported as app "shop"
under that owner. Tests marked `local` (CLI, logs, operator port, extra
tokens and tenants, private server instances, destructive checks) are
skipped then, like Redis `external:skip`.

    /usr/bin/python3 -m pytest -q tests/api
"""
import os
import time

import pytest

import fvtest
from fvtest import APPS, Api, Server, expect

EXTERNAL_URL = os.environ.get("FORMVAULT_URL")


def pytest_configure(config):
    config.addinivalue_line("filterwarnings",
                            "ignore::urllib3.exceptions.InsecureRequestWarning")
    config.addinivalue_line(
        "markers", "local: needs the local binary, data dir, CLI, log or operator port "
        "(skipped when FORMVAULT_URL points at a deployed node)")


def pytest_collection_modifyitems(config, items):
    if not EXTERNAL_URL:
        return
    skip = pytest.mark.skip(reason="needs a local formvault (FORMVAULT_URL is set)")
    for item in items:
        if "local" in item.keywords:
            item.add_marker(skip)


class Node:
    """What the tests know about the node under test."""

    def __init__(self):
        self.server = None   # fvtest.Server in local mode
        self.base = None
        self.owner = "acme"
        self.tokens = {}
        self.expired_at = 0.0

    def api(self, token="all", **kw):
        tok = self.tokens.get(token, token)
        return Api(self.base, kw.pop("owner", self.owner), kw.pop("app", "shop"), tok, **kw)


SCOPED = {
    "read": ["ZohoCreator.report.READ"],
    "create": ["ZohoCreator.form.CREATE"],
    "update": ["ZohoCreator.report.UPDATE"],
    "delete": ["ZohoCreator.report.DELETE"],
    "dashboard": ["ZohoCreator.dashboard.READ"],
    "meta_app": ["ZohoCreator.meta.application.READ"],
    "meta_form": ["ZohoCreator.meta.form.READ"],
}


@pytest.fixture(scope="session")
def node():
    n = Node()
    if EXTERNAL_URL:
        n.base = EXTERNAL_URL.rstrip("/")
        n.owner = os.environ.get("FORMVAULT_OWNER", "acme")
        n.tokens["all"] = os.environ["FORMVAULT_TOKEN"]
        yield n
        return
    s = Server()
    try:
        s.init()
        for t in ("acme", "beta"):
            s.tenant(t)
            s.import_app(APPS / "test_app.json", t)
        s.import_app(APPS / "noreports_app.json", "acme")
        s.import_app(APPS / "beta_only_app.json", "beta")
        n.tokens["all"] = s.token("acme")
        n.tokens["beta"] = s.token("beta")
        for name, scopes in SCOPED.items():
            n.tokens[name] = s.token("acme", scopes)
        n.tokens["expired"] = s.token("acme", expires="1s")
        n.expired_at = time.monotonic() + 1.0
        s.start()
        n.server = s
        n.base = s.base
        yield n
    finally:
        s.cleanup()


@pytest.fixture
def api(node):
    return node.api()


@pytest.fixture
def server(node):
    if node.server is None:
        pytest.skip("needs a local formvault")
    return node.server


@pytest.fixture(autouse=True)
def still_serving(request, node):
    """After every test the shared server must still be up and answering
    (every error case leaves the server serving)."""
    yield
    if node.base is None:
        return
    if node.server is not None:
        assert node.server.running(), \
            f"formvault serve died during the test:\n{node.server.log_tail()}"
    r = node.api().meta(node.owner, "shop", "forms")
    expect(r, 200, 3000)


@pytest.fixture
def uniq(request):
    """A unique marker string for the current test."""
    import uuid
    return f"{request.node.name[:24]}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_server():
    """Factory for private nodes (own data dir and ports), cleaned up after."""
    made = []

    def make(**kw):
        s = fvtest.new_node(**kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.cleanup()
