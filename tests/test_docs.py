"""The README and docs/: links that resolve, a README on one screen, nothing of our machines, no stale module names."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# "About one screen": the README's word count, badges included once `make colab` has added them.
README_MAX_WORDS = 900

FENCED_CODE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
# [text](target) and ![alt](target); the target ends at the first space or closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*$", re.MULTILINE)
# A run of 7 to 40 hex digits with at least one letter and one digit, standing alone: an
# abbreviated or full commit hash (a SHA-256 checksum is 64 digits and does not match).
COMMIT_HASH = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")
# Where our own machines keep things; users have none of these.
MACHINE_PATHS = ("/work/", "/home/", "../shared")
# Files of the repository named in prose or commands, and the package's modules as Python names.
REPOSITORY_FILE = re.compile(r"\b((?:nbhelpers|bench|tests)/[\w/]+\.py)\b")
PACKAGE_MODULE = re.compile(r"\bnbhelpers\.([a-z_]+)\b")


def _ids(paths):
    return [p.relative_to(ROOT).as_posix() for p in paths]


def _without_code_blocks(text):
    return FENCED_CODE.sub("", text)


def heading_anchors(markdown):
    """The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped, spaces as '-'."""
    anchors = set()
    for heading in HEADING.findall(_without_code_blocks(markdown)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:  # a repeated heading gets -1, -2, ...
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def broken_links(document):
    """The relative links of a Markdown file whose file, or heading anchor, does not exist."""
    broken = []
    for target in LINK.findall(_without_code_blocks(document.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not a file of ours
            continue
        path_part, _, anchor = target.partition("#")
        path = (document.parent / path_part).resolve() if path_part else document
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path.read_text(encoding="utf-8")):
            broken.append(target)
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=_ids(DOCUMENTS))
def test_every_relative_link_resolves(document):
    assert broken_links(document) == []


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# A heading: with `code`\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md) [ok](other.md#a-heading-with-code) [site](https://example.com/x)\n"
                    "[gone](missing.md) [no anchor](other.md#elsewhere) ![img](pics/none.png)\n"
                    "```\n[in code](not/checked.md)\n```\n", encoding="utf-8")
    assert broken_links(page) == ["missing.md", "other.md#elsewhere", "pics/none.png"]


def test_the_readme_fits_on_one_screen():
    words = len((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert words <= README_MAX_WORDS, f"README.md has {words} words; move detail into docs/"


@pytest.mark.parametrize("document", DOCUMENTS, ids=_ids(DOCUMENTS))
def test_no_commit_hash_or_path_of_our_machines(document):
    text = document.read_text(encoding="utf-8")
    assert COMMIT_HASH.findall(text) == []
    assert [p for p in MACHINE_PATHS if p in text] == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=_ids(DOCUMENTS))
def test_every_module_and_script_named_exists(document):
    text = document.read_text(encoding="utf-8")
    missing = [name for name in REPOSITORY_FILE.findall(text) if not (ROOT / name).is_file()]
    missing += [f"nbhelpers.{name}" for name in PACKAGE_MODULE.findall(text)
                if not (ROOT / "nbhelpers" / f"{name}.py").is_file() and not (ROOT / "nbhelpers" / name).is_dir()]
    assert sorted(set(missing)) == []


def test_the_readme_places_every_package_module_in_one_of_the_five_steps():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Where things live", 1)[1].split("\n## ", 1)[0]
    table_rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    named = {name for row in table_rows for name in re.findall(r"`(\w+)\.py`", row)}
    modules = {p.stem for p in (ROOT / "nbhelpers").glob("*.py") if p.stem != "__init__"}
    assert {"missing from the table": sorted(modules - named), "not in nbhelpers/": sorted(named - modules)} == {
        "missing from the table": [], "not in nbhelpers/": []}
