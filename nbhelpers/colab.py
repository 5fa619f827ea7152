"""Publishing the notebooks for Colab: badges, and the first cell that installs this package.

The repository's public URL lives in one place, `[project.urls] Repository` in pyproject.toml,
with the tag the notebooks install from (`[tool.nbhelpers] install-ref`). One command writes
both there and renders from them every "Open in Colab" badge (each notebook's first cell, the
README's notebook table) and every notebook's install cell:

    make colab REPOSITORY=https://github.com/OWNER/NAME REF=v0.1.0
    python -m nbhelpers.colab --repository https://github.com/OWNER/NAME --ref v0.1.0
    python -m nbhelpers.colab --check        # do pyproject, badges and install cells agree?

Until it has run, the notebooks carry no badge and their install cell needs `NBHELPERS_SOURCE`.
`INSTALL_CELL` is the one copy of the install cell's code; each notebook's second cell is it,
rendered with the repository, the tag and the project's lower bounds for TensorFlow, Keras, JAX.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# The notebooks are read and written as the rest of the project writes them (nbformat 4).
NOTEBOOK_GLOB = "notebooks/[0-9][0-9]_*.ipynb"
GITHUB_REPOSITORY = re.compile(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)")
# A tag, branch or commit as git accepts them in a pip URL (no spaces, no '@').
GIT_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
# Packages a runtime (Colab) brings itself: kept when at least the project's lower bound.
KEPT_PACKAGES = ("tensorflow", "keras", "jax")
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")

INSTALL_CELL = '''\
# Installs the helper package where it is missing (Colab, a fresh runtime); does nothing where it
# is installed. The same cell opens every notebook (written by `python -m nbhelpers.colab`).
import importlib.util
if importlib.util.find_spec("nbhelpers") is None:
    import importlib, os, re, shlex, sys
    from importlib import metadata
    REPOSITORY, REF = {repository}, {ref}  # the published repository and the tag to install
    KEEP_AT_LEAST = {keep}  # the runtime's own, kept if this new
    source = os.environ.get("NBHELPERS_SOURCE") or (REPOSITORY and f"git+{{REPOSITORY}}@{{REF}}")
    if not source:
        raise SystemExit("Set NBHELPERS_SOURCE to nbhelpers' source (a git+https://...@tag URL or a "
                         "folder), e.g. os.environ['NBHELPERS_SOURCE'] = '...', and run this cell again.")

    def name(text):  # the one spelling of a distribution's name
        return re.sub(r"[-_.]+", "-", text).lower()

    def installed():  # distribution -> version, the first on sys.path wins as for imports
        found = {{}}
        for dist in metadata.distributions():
            found.setdefault(name(dist.metadata["Name"]), dist.version)
        return found

    def release(version):  # "2.19.0rc1" -> (2, 19, 0)
        return tuple(int(part) for part in re.match(r"\\d+(\\.\\d+)*", version)[0].split("."))

    before = installed()
    keep = [f"{{package}}=={{before[package]}}" for package, oldest in KEEP_AT_LEAST.items()
            if package in before and release(before[package]) >= release(oldest)]
    if any(pin.startswith("tensorflow==") for pin in keep):  # tensorflow-text is built per TensorFlow x.y
        keep.append("tensorflow-text==" + ".".join(before["tensorflow"].split(".")[:2]) + ".*")
    requirements = shlex.join([source, *keep])
    %pip install --quiet {{requirements}}
    importlib.invalidate_caches()
    if importlib.util.find_spec("nbhelpers") is None:
        raise SystemExit(f"pip could not install nbhelpers from {{source}}: see its messages above.")
    changed = {{package: version for package, version in installed().items() if before.get(package) != version}}
    print("Installed:", ", ".join(f"{{p}} {{v}}" for p, v in sorted(changed.items())), f"(from {{source}})")
    imported = {{name(d) for module, dists in metadata.packages_distributions().items() if module in sys.modules for d in dists}}
    stale = sorted(package for package in changed if package in before and package in imported)
    print(f"Restart the runtime (Colab: Runtime > Restart session), then run the notebook again: "
          f"{{', '.join(stale)}} changed after this session imported it." if stale else "No restart needed.")
'''


class PublishError(ValueError):
    """A repository URL or tag that cannot be published."""


def read_pyproject(root=ROOT):
    """pyproject.toml of the checkout at `root`, parsed."""
    return tomllib.loads((Path(root) / "pyproject.toml").read_text())


def published_repository(pyproject):
    """`(repository URL, tag)` from a parsed pyproject.toml; empty strings until `make colab` ran."""
    repository = pyproject["project"].get("urls", {}).get("Repository", "")
    return repository, pyproject.get("tool", {}).get("nbhelpers", {}).get("install-ref", "")


def lower_bounds(pyproject, packages=KEPT_PACKAGES):
    """The `>=` bound of each of `packages` among the dependencies and extras.

    Args:
        pyproject: parsed pyproject.toml.
        packages: distribution names to look up.

    Returns:
        A dict name -> lowest version, in the order of `packages`.
    """
    declared = [*pyproject["project"]["dependencies"],
                *(r for extra in pyproject["project"].get("optional-dependencies", {}).values() for r in extra)]
    bounds = {}
    for requirement in map(Requirement, declared):
        for specifier in requirement.specifier:
            if specifier.operator == ">=" and requirement.name in packages:
                bounds[requirement.name] = specifier.version
    missing = [p for p in packages if p not in bounds]
    if missing:
        raise PublishError(f"pyproject.toml declares no lower bound (>=) for {missing}.")
    return {p: bounds[p] for p in packages}


def check_repository(repository, ref):
    """Refuse, in one line, a URL Colab cannot open or a tag pip cannot install."""
    if not GITHUB_REPOSITORY.fullmatch(repository):
        raise PublishError(f"REPOSITORY={repository!r}: expected https://github.com/OWNER/NAME "
                           "(Colab opens notebooks from GitHub), without .git or a trailing slash.")
    if not GIT_REF.fullmatch(ref):
        raise PublishError(f"REF={ref!r}: expected the tag or commit to install from, e.g. v0.1.0.")


def install_cell_source(repository, ref, keep_at_least):
    """The install cell's code for a repository and tag (empty strings: none published yet)."""
    # JSON's literals are Python's here, and keep the cell's double quotes.
    literals = {k: json.dumps(v) for k, v in dict(repository=repository, ref=ref, keep=keep_at_least).items()}
    return INSTALL_CELL.format(**literals).rstrip("\n")


def colab_url(repository, ref, notebook_name):
    """The address at which Colab opens `notebooks/<notebook_name>` of a GitHub repository at `ref`."""
    owner_and_name = GITHUB_REPOSITORY.fullmatch(repository).group(1, 2)
    return f"https://colab.research.google.com/github/{'/'.join(owner_and_name)}/blob/{ref}/notebooks/{notebook_name}"


def badge(repository, ref, notebook_name):
    """The Markdown of an "Open In Colab" badge for one notebook."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(repository, ref, notebook_name)})"


def with_badge(markdown, badge_markdown):
    """`markdown` with its leading badge line replaced by `badge_markdown` (or removed if empty)."""
    body = re.sub(rf"\A{BADGE.pattern}\n\n", "", markdown)
    return f"{badge_markdown}\n\n{body}" if badge_markdown else body


def readme_with_badges(readme, notebook_names, repository, ref):
    """README text whose notebook table carries a badge after each notebook's link (none without a URL)."""
    for notebook_name in notebook_names:
        link = re.escape(f"[`{Path(notebook_name).stem}`](notebooks/{notebook_name})")
        new = badge(repository, ref, notebook_name) if repository else ""
        readme, count = re.subn(rf"({link})(?: {BADGE.pattern})?", lambda m: f"{m[1]} {new}".rstrip(), readme)
        if count != 1:
            raise PublishError(f"README.md: expected one table link to notebooks/{notebook_name}, found {count}.")
    return readme


def write_pyproject_url(text, repository, ref):
    """pyproject.toml text with `[project.urls] Repository` and `install-ref` set."""
    text = re.sub(r'(?m)^install-ref = ".*"$', f'install-ref = "{ref}"', text)
    if re.search(r"(?m)^\[project\.urls\]$", text):
        return re.sub(r'(?m)^Repository = ".*"$', f'Repository = "{repository}"', text)
    # The urls table goes before the first table after [project]'s own keys.
    return re.sub(r"(?m)^\[project\.optional-dependencies\]$",
                  f'[project.urls]\nRepository = "{repository}"\n\n[project.optional-dependencies]', text, count=1)


def notebook_files(root=ROOT):
    """The series' notebooks in a checkout, in order."""
    return sorted(Path(root).glob(NOTEBOOK_GLOB))


def render(root=ROOT):
    """Write each notebook's badge and install cell and the README's badges from pyproject.toml.

    Only the first markdown cell (its badge line) and the install cell change; the other cells
    are written back as read.

    Args:
        root: the checkout whose pyproject.toml, notebooks/ and README.md are read and written.
    """
    root = Path(root)
    pyproject = read_pyproject(root)
    repository, ref = published_repository(pyproject)
    cell = install_cell_source(repository, ref, lower_bounds(pyproject))
    paths = notebook_files(root)
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        notebook.cells[0].source = with_badge(notebook.cells[0].source, repository and badge(repository, ref, path.name))
        notebook.cells[install_cell_index(notebook, path)].source = cell
        nbformat.write(notebook, path)
    readme = root / "README.md"
    readme.write_text(readme_with_badges(readme.read_text(), [p.name for p in paths], repository, ref))


def install_cell_index(notebook, path):
    """The install cell's index: the first code cell, before the parameters."""
    index = next((i for i, c in enumerate(notebook.cells) if c.cell_type == "code"), None)
    if index is None or "parameters" in notebook.cells[index].metadata.get("tags", []):
        raise PublishError(f"{path}: no install cell before the parameters cell.")
    return index


def publish(root, repository, ref):
    """Set the published repository and tag in pyproject.toml, then render badges and install cells.

    Args:
        root: the checkout.
        repository: `https://github.com/OWNER/NAME`.
        ref: the tag or commit the badges open and the install cells install (push it).
    """
    check_repository(repository, ref)
    pyproject = Path(root) / "pyproject.toml"
    text = write_pyproject_url(pyproject.read_text(), repository, ref)
    if published_repository(tomllib.loads(text)) != (repository, ref):
        raise PublishError("pyproject.toml: could not write [project.urls] Repository and install-ref.")
    pyproject.write_text(text)
    render(root)


def disagreements(root=ROOT):
    """What in the checkout disagrees with pyproject.toml's repository and tag (empty when all agree).

    Args:
        root: the checkout to check.

    Returns:
        One line per disagreement: a badge, an install cell or the README's table.
    """
    root = Path(root)
    pyproject = read_pyproject(root)
    repository, ref = published_repository(pyproject)
    cell = install_cell_source(repository, ref, lower_bounds(pyproject))
    found = []
    paths = notebook_files(root)
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        expected = repository and badge(repository, ref, path.name)
        if notebook.cells[0].source != with_badge(notebook.cells[0].source, expected):
            found.append(f"{path.name}: the badge does not match pyproject.toml")
        if notebook.cells[install_cell_index(notebook, path)].source != cell:
            found.append(f"{path.name}: the install cell is not nbhelpers.colab's, rendered for pyproject.toml")
        other_badges = [b for cell_ in notebook.cells[1:] if cell_.cell_type == "markdown" for b in BADGE.findall(cell_.source)]
        if other_badges:
            found.append(f"{path.name}: a badge outside the first cell")
    readme = (root / "README.md").read_text()
    if readme != readme_with_badges(readme, [p.name for p in paths], repository, ref):
        found.append("README.md: the notebook table's badges do not match pyproject.toml")
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", help="the published repository, https://github.com/OWNER/NAME")
    parser.add_argument("--ref", help="the tag or commit to install and open (default: v<version>)")
    parser.add_argument("--check", action="store_true", help="only report what disagrees with pyproject.toml")
    parser.add_argument("--root", default=str(ROOT), help="the checkout to write (default: this package's)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            found = disagreements(args.root)
            print("\n".join(found) or "pyproject.toml, badges and install cells agree.")
            return 1 if found else 0
        if not args.repository:
            raise PublishError("Give the published repository: make colab REPOSITORY=https://github.com/OWNER/NAME")
        ref = args.ref or f"v{read_pyproject(args.root)['project']['version']}"
        publish(args.root, args.repository, ref)
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {args.repository} @ {ref} into pyproject.toml, the notebooks' badges and install cells and "
          f"README.md. Commit, then tag that commit {ref} and push the tag: the install cells install it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
