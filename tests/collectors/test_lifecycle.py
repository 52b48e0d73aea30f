"""The lifecycle collector: starting, config and started; stopping and stopped; no secrets."""

from __future__ import annotations

from bridge import __version__
from bridge.messages import SystemConfig, SystemLifecycle
from bridge.settings import Settings
from collectors import LifecycleCollector, public_config
from tests.collectors.fakes import make_integration


async def test_announces_start_and_stop_once_with_the_version():
    """start() publishes starting, SystemConfig, started; aclose() stopping, stopped, once."""
    integration = make_integration()
    collector = LifecycleCollector(integration, config={"node": "n1"})
    await collector.start()
    await collector.start()
    await collector.aclose()
    await collector.aclose()
    kinds = [
        m.event if isinstance(m, SystemLifecycle) else "config" for _, m in integration.published
    ]
    assert kinds == ["starting", "config", "started", "stopping", "stopped"]
    lifecycle = integration.of(SystemLifecycle)
    assert {m.version for m in lifecycle} == {__version__}
    assert {m.system_name for m in lifecycle} == {"exesdb_bridge"}
    (config,) = integration.of(SystemConfig)
    assert config.changes == {"node": "n1"}
    assert config.component == "exesdb_bridge"


def test_public_config_has_no_secrets():
    """The published configuration leaves out keys, tokens and URL credentials."""
    settings = Settings(
        SECRET_KEY_BASE="s" * 40,
        EXESDB_ADMIN_TOKEN="admin-token-value",
        EXESDB_BUS="redis://user:pass@localhost:6379/0",
        EXESDB_NODE="n1",
    )
    shown = repr(public_config(settings))
    assert "sss" not in shown
    assert "admin-token-value" not in shown
    assert "pass" not in shown
    assert public_config(settings)["bus"] == "redis"


async def test_publishes_nothing_while_disabled():
    """With the integration off, start and stop publish nothing."""
    integration = make_integration(enabled=False)
    collector = LifecycleCollector(integration)
    await collector.start()
    await collector.aclose()
    assert integration.published == []
