"""The README and docs/ say what the code has: every setting, every route, tests that exist, links that resolve."""

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.routes import docs as docs_routes
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
LAUNCHER = ("GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_WORKERS")  # scripts/run.sh
# Variables read outside shared/settings.py, where to find them.
ELSEWHERE = [ROOT / "scripts", ROOT / "cli", ROOT / "tests" / "settings.py", ROOT / "bench" / "run.py"]


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _table_names(markdown: str) -> set[str]:
    """Every `NAME` in the first column of the page's tables (an `A` / `B` cell names two)."""
    names = set()
    for line in markdown.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def test_the_readme_is_short_and_names_both_commands_first() -> None:
    lines = _text(README).splitlines()
    assert len(lines) <= 250
    top = "\n".join(lines[:40])
    assert "make run" in top
    assert "make test" in top


def test_every_setting_is_documented() -> None:
    """A setting added to shared/settings.py without a line in docs/configuration.md fails here."""
    documented = _table_names(_text(DOCS / "configuration.md"))
    wanted = {name.upper() for name in Settings.model_fields} | set(LAUNCHER)
    assert sorted(wanted - documented) == []


def test_every_documented_variable_exists() -> None:
    """A variable the code no longer reads must not stay in docs/configuration.md."""
    settings = {name.upper() for name in Settings.model_fields}
    sources = "\n".join(
        _text(path) for place in ELSEWHERE for path in ([place] if place.is_file() else sorted(place.rglob("*")))
        if path.is_file() and path.suffix in {".py", ".sh"}
    )  # fmt: skip
    stale = [name for name in _table_names(_text(DOCS / "configuration.md")) if name not in settings | set(LAUNCHER)]
    assert [name for name in stale if name not in sources and not name.endswith("_")] == []


@cache
def _openapi_routes() -> list[str]:
    schema = create_app().openapi()
    return [f"{method.upper()} {path}" for path, operations in schema["paths"].items() for method in operations]


def test_every_route_is_in_the_api_table() -> None:
    """A route added to the gateway without a row in docs/api.md fails here."""
    table = "\n".join(line for line in _text(DOCS / "api.md").splitlines() if line.startswith("| `"))
    missing = [route for route in _openapi_routes() if f"`{route}`" not in table]
    app = create_app()
    hidden = [route.path for route in docs_routes.router.routes]  # type: ignore[attr-defined]
    hidden += ["/metrics", str(app.docs_url), str(app.redoc_url), str(app.openapi_url)]
    missing += [path for path in hidden if not re.search(rf"[ `]{re.escape(path)}`", table)]
    assert missing == []


@cache
def _test_names() -> dict[str, set[str]]:
    """Test function name -> the files that define it; file names too."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        found.setdefault(path.name, set()).add(str(path))
        for node in ast.walk(ast.parse(_text(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
                found.setdefault(node.name, set()).add(str(path))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_test_a_page_cites_exists(page: Path) -> None:
    """A promise points at its test by name: a renamed or deleted test fails here, not silently."""
    cited = set(re.findall(r"`(test_\w+(?:\.py)?)`", _text(page)))
    assert sorted(name for name in cited if name not in _test_names()) == []


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_link_resolves(page: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _text(page)):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", _text(linked), re.MULTILINE)
            if anchor not in {_anchor(heading) for heading in headings}:
                broken.append(target)
    assert broken == []
