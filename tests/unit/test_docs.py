"""Generated reference docs match the tables they are generated from (run `make docs` to refresh)."""
from __future__ import annotations

from tools import gendocs


def test_generated_docs_are_up_to_date():
    assert gendocs.main(["--check", "--quick"]) == 0, "a generated doc is stale: run `make docs` and commit the result"


def test_configuration_doc_lists_every_option():
    from firmware.config import meter_schema

    text = gendocs.render_config()
    for section in meter_schema().sections:
        assert f"## [{section.name}]" in text
        for option in section.options:
            assert f"| `{option.name}` |" in text


def test_security_doc_gives_every_option_its_rule():
    from firmware.config import meter_schema
    from tools import gendocs_security

    text = gendocs_security.render()
    for rule in meter_schema().rules():
        assert f"| `{rule.option}` | {rule.privilege} | {'yes' if rule.locked else 'no'} |" in text, rule.option
