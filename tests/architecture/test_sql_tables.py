"""No app names another app's table in SQL (ADR 0001): an app reads another app's data through
that app's selectors or models, so a table can be renamed or split by its owner alone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django.apps import apps as django_apps

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "apps"


def _tables_by_package() -> dict[str, set[str]]:
    """Each of our apps' package name (apps/<name>) -> the tables its models own."""
    owned: dict[str, set[str]] = {}
    for model in django_apps.get_models(include_auto_created=True):
        module = model.__module__.split(".")
        if module[0] == "apps":
            owned.setdefault(module[1], set()).add(model._meta.db_table)
    return owned


def _strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _foreign_table_mentions(owned: dict[str, set[str]]) -> list[str]:
    found = []
    for path in sorted(APPS.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if "migrations" in rel.parts or len(rel.parts) < 3:
            continue
        package = rel.parts[1]
        foreign = {t: p for p, tables in owned.items() if p != package for t in tables}
        if not foreign:
            continue
        pattern = re.compile(r'(?<![\w.])"?(' + "|".join(map(re.escape, foreign)) + r')"?(?!\w)')
        for lineno, text in _strings(path):
            for match in pattern.finditer(text):
                table = match.group(1)
                found.append(f"{rel}:{lineno} names {table} (owned by apps.{foreign[table]})")
    return found


def test_no_app_names_another_apps_table_in_a_string() -> None:
    owned = _tables_by_package()
    assert "trading_order" in owned["trading"]  # the registry is what we think it is

    found = _foreign_table_mentions(owned)

    assert not found, "read another app's data through its selectors or models:\n" + "\n".join(
        found
    )


def test_checker_when_a_module_names_a_foreign_table_then_it_is_found(tmp_path, monkeypatch):
    """The check itself can fail: a module of risk that names trading's order table."""
    fake_apps = tmp_path / "apps" / "risk"
    fake_apps.mkdir(parents=True)
    (fake_apps / "leaky.py").write_text('SQL = "SELECT count(*) FROM trading_order"\n')
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    monkeypatch.setattr(f"{__name__}.APPS", tmp_path / "apps")

    found = _foreign_table_mentions(_tables_by_package())

    assert found == ["apps/risk/leaky.py:1 names trading_order (owned by apps.trading)"]
