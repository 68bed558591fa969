"""What pentora says about plugins that do not exist, clash, or are broken."""

from __future__ import annotations

import pytest

from pentora._errors import UnknownPluginError
from pentora._plugins import get_plugin_manager


@pytest.mark.parametrize(("typed", "hint"), [
    ("portscann", "(did you mean 'portscan'?)"),
    ("syn_scn", "(did you mean 'portscan' (once 'syn_scan')?)"),  # near a former name
])
def test_disabling_an_unknown_plugin_says_the_nearest(typed: str, hint: str) -> None:
    with pytest.raises(UnknownPluginError) as e:
        get_plugin_manager(disabled=[typed])
    assert str(e.value).startswith(f"no plugin named '{typed}' to disable {hint}")


def test_disabling_a_name_near_nothing_says_where_to_look() -> None:
    with pytest.raises(UnknownPluginError) as e:
        get_plugin_manager(disabled=["zzzz"])
    assert "did you mean" not in str(e.value)
    assert "`pentora plugins list` shows the plugins" in str(e.value)
