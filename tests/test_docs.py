"""The README and docs/: the configuration reference in sync with the code, the README short, every relative
link alive, and the two set-up commands a newcomer pastes exactly as they are. No Spark."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from film2vec.config import reference_markdown

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SET_UP = (
    'pip install -e ".[spark]" && film2vec run --out film2vec-demo',
    'pip install -e ".[test]" && python -m pytest',
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", FENCE.sub("", page.read_text(encoding="utf-8")), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_configuration_reference_is_generated_from_the_config():
    written = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert written == reference_markdown(), (
        "docs/configuration.md is out of date; regenerate it: python -m film2vec.config > docs/configuration.md"
    )


def test_readme_is_under_250_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < 250, f"README.md has {lines} lines; move studies, benchmarks and operations to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_point_at_files_and_headings_that_exist(page):
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to what does not exist: {broken}"


def test_readme_keeps_the_two_set_up_commands_verbatim():
    lines = [line.strip() for line in README.read_text(encoding="utf-8").splitlines()]
    for command in SET_UP:
        assert command in lines, f"README.md lacks the set-up command, verbatim: {command}"
    assert SET_UP[1] in (ROOT / ".ci" / "run").read_text(), "CI (.ci/run) runs the README's test command"
