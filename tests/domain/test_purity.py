"""domain/ is the loan rules only: it imports nothing outside the standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "domain"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_domain_imports_only_the_standard_library() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert len(files) > 5
    outside = [f"{f.name}:{line} imports {mod}" for f in files for line, mod in imported_modules(f)
               if mod.split(".")[0] not in sys.stdlib_module_names and mod.split(".")[0] not in ("domain",
                                                                                                 "__future__")]
    assert outside == []


def test_the_check_would_catch_a_third_party_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import httpx\nfrom sqlmodel import Field\nimport decimal\n")
    mods = [m for _, m in imported_modules(bad) if m.split(".")[0] not in sys.stdlib_module_names]
    assert mods == ["httpx", "sqlmodel"]
