"""The plugin's API server fixtures, used the way users use them (pytester)."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run the inner session in process. pytest-benchmark warns inside an xdist worker, and
    the inner run inherits filterwarnings=error, so it stays out."""
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:benchmark", *args)


@pytest.fixture(autouse=True)
def _quiet_asyncio_ini(pytester: pytest.Pytester) -> None:
    # The inner run inherits filterwarnings=error; pytest-asyncio warns when this is unset.
    pytester.makeini("""
        [pytest]
        asyncio_default_fixture_loop_scope = function
    """)


def test_apiserver_fixture_serves_stops_and_fails_on_server_errors(
    pytester: pytest.Pytester,
) -> None:
    # One inner session for three tests: each costs about a second of pytest start-up.
    pytester.makepyfile("""
        import json, urllib.request, urllib.error
        from pytest_ntinvariants.apiserver import Interceptor

        SEEN = {}

        def test_serves(ntinv_apiserver):
            url = ntinv_apiserver.url
            assert url.startswith("http://127.0.0.1:")
            with urllib.request.urlopen(url + "/api/v1/namespaces/default", timeout=5) as r:
                assert json.loads(r.read())["metadata"]["name"] == "default"
            ntinv_apiserver.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "c"}})
            SEEN["server"] = ntinv_apiserver

        def test_fresh_server_per_test(ntinv_apiserver):
            assert ntinv_apiserver is not SEEN["server"]
            # The previous test's server was stopped at its teardown.
            assert not SEEN["server"]._thread.running
            import pytest
            from pytest_ntinvariants.apiserver.errors import NotFound
            with pytest.raises(NotFound):
                ntinv_apiserver.get("v1", "ConfigMap", "c")

        class Boom(Interceptor):
            async def on_request(self, request):
                raise RuntimeError("interceptor exploded")

        def test_boom(ntinv_apiserver):
            ntinv_apiserver.add_interceptor(Boom())
            try:
                urllib.request.urlopen(ntinv_apiserver.url + "/api/v1/namespaces", timeout=5)
            except urllib.error.HTTPError as e:
                assert e.code == 500
                e.close()
    """)
    result = run(pytester)
    # test_boom passes its body and errors at teardown, where the server's stop raises.
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_boom*", "*interceptor exploded*"])


def test_kubeconfig_fixture_sets_the_environment(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import os, yaml
        import kubernetes.config.kube_config as kube_config

        # As if an earlier test had imported the client under another KUBECONFIG: it reads
        # the variable once, at import.
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = "/nonexistent/kubeconfig"

        def test_env(ntinv_kubeconfig, ntinv_apiserver):
            assert os.environ["KUBECONFIG"] == str(ntinv_kubeconfig)
            cfg = yaml.safe_load(ntinv_kubeconfig.read_text())
            assert cfg["clusters"][0]["cluster"]["server"] == ntinv_apiserver.url
            assert cfg["current-context"] == "test"

        def test_python_client(ntinv_kubeconfig):
            from kubernetes import client, config
            config.load_kube_config()
            with client.ApiClient() as api:
                names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
            assert "default" in names

        def test_factory(ntinv_kubeconfig_factory, ntinv_apiserver):
            a, b = ntinv_kubeconfig_factory("a"), ntinv_kubeconfig_factory("b")
            assert a != b
            assert ntinv_apiserver.token_for("a") in a.read_text()
    """)
    import kubernetes.config.kube_config as kube_config

    before = os.environ.get("KUBECONFIG"), kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    result = run(pytester)
    result.assert_outcomes(passed=3)
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = before[1]  # the inner module's own change
    assert os.environ.get("KUBECONFIG") == before[0]  # restored by the fixture


def test_tls_option_and_bookmark_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("""
        [pytest]
        asyncio_default_fixture_loop_scope = function
        ntinv_bookmark_interval = 0.05
    """)
    pytester.makepyfile("""
        def test_tls(ntinv_apiserver):
            assert ntinv_apiserver.url.startswith("https://127.0.0.1:")
            assert ntinv_apiserver.ca_path.exists()
            assert ntinv_apiserver.handler.bookmark_interval == 0.05
    """)
    result = run(pytester, "--ntinv-apiserver-tls")
    result.assert_outcomes(passed=1)


def test_bad_bookmark_ini_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("""
        [pytest]
        asyncio_default_fixture_loop_scope = function
        ntinv_bookmark_interval = often
    """)
    pytester.makepyfile("""
        def test_x(ntinv_apiserver):
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ntinv_bookmark_interval must be a number*"])


@pytest.mark.parametrize("value", ["often", "0", "2.5"])
def test_a_bad_max_writes_ini_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    pytester.makeini(f"""
        [pytest]
        asyncio_default_fixture_loop_scope = function
        ntinv_max_writes = {value}
    """)
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option ntinv_max_writes must be a *"])
