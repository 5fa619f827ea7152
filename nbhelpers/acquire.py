"""Download the series' real datasets into a data folder, surviving a hostile network.

Each dataset has a list of sources: the URL the original Keras guide used first, mirrors after.
`fetch` tries them in order. A source counts as done only when its download matches the
published checksum and every file has been written under a temporary name and renamed into
place, so an interrupted, truncated or corrupted download never leaves a file that the loaders
in `nbhelpers.data` would read. When every source fails, one `AcquisitionError` says what each
source returned and which files to copy into the data folder by hand.

Layout written inside `data_dir`::

    sst2/train.tsv, sst2/dev.tsv                      GLUE SST-2            (name "sst2")
    vocab/bert_vocab_uncased.txt                      BERT uncased WordPiece (name "vocab")
    wikitext-103/wiki.{train,valid,test}.raw          WikiText-103 raw      (name "wikitext-103")
    wikitext-2/wiki.{train,valid,test}.raw            WikiText-2 raw        (name "wikitext-2")
    corpus/movie_reviews.zip                          NLTK movie reviews    (name "movie_reviews")
    corpus/{brown,abc,webtext}.zip                    NLTK general English  (names "brown", "abc", "webtext")
    sentiment/product_reviews_{1,2}.zip               Hu & Liu's product reviews, an out-of-domain check
                                                      (names "product_reviews_1", "product_reviews_2")

Downloads are cached (by default in the user cache folder, `pooch.os_cache("nbhelpers")`), so
deleting `data_dir` and fetching again re-extracts without downloading.

Usage (names as in the notebooks):

    report = fetch("sst2", "data")
    report.paths

From a shell::

    python -m nbhelpers.acquire --data-dir data sst2 vocab
    python -m nbhelpers.acquire --data-dir data all

For tests or a private mirror, the command line reads replacement sources from the environment
variable `NBHELPERS_ACQUIRE_SOURCES`: JSON mapping a dataset name to a list of objects with the
fields of `Source` (`url`, `known_hash`, `archive`, `members`, `member_hashes`).
"""

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import re
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pooch
import requests

from nbhelpers.cli import DEBUG_HELP, UserError, run_command

logger = logging.getLogger(__name__)

SOURCES_ENV = "NBHELPERS_ACQUIRE_SOURCES"
DEFAULT_TIMEOUT = 60


@dataclass(frozen=True)
class Source:
    """One place a dataset can be downloaded from.

    Args:
        url: what to download.
        known_hash: the download's published checksum in pooch's format ("<sha256 hex>" or
            "md5:<hex>"), or None when none is published (then members are checked instead,
            where `member_hashes` has them).
        archive: True for a zip whose members are extracted; False when the download is itself
            the dataset's single file (kept as downloaded, even if it is a zip).
        members: for an archive, archive member -> file path relative to `data_dir`.
        member_hashes: archive member -> published checksum of the extracted member.
    """

    url: str
    known_hash: str | None = None
    archive: bool = False
    members: dict = field(default_factory=dict)
    member_hashes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """A dataset: the files it puts in `data_dir` (relative, "/"-separated) and its sources."""

    name: str
    files: tuple
    sources: tuple


@dataclass
class FetchReport:
    """What `fetch` did.

    Attributes:
        name: the dataset.
        paths: full paths of the dataset's files in `data_dir`.
        source: the URL the files came from, or None when they were already present.
        failures: `(url, reason)` for each source that failed before the one that worked.
    """

    name: str
    paths: list
    source: str | None
    failures: list


class AcquisitionError(RuntimeError):
    """Every source of a dataset failed; the message lists them and the files to place by hand."""


_SST2_MEMBERS = {"SST-2/train.tsv": "sst2/train.tsv", "SST-2/dev.tsv": "sst2/dev.tsv"}


def _wikitext_dataset(name, sha256):
    """WikiText raw (`name` is "wikitext-103" or "wikitext-2"): the guide's S3 URL, then a mirror."""
    members = {f"{name}-raw/wiki.{split}.raw": f"{name}/wiki.{split}.raw" for split in ("train", "valid", "test")}
    hosts = ("https://s3.amazonaws.com/research.metamind.io/wikitext", "https://wikitext.smerity.com")
    return Dataset(
        name,
        tuple(members.values()),
        tuple(Source(f"{host}/{name}-raw-v1.zip", known_hash=sha256, archive=True, members=members) for host in hosts),
    )


DATASETS = {
    "sst2": Dataset(
        "sst2",
        ("sst2/train.tsv", "sst2/dev.tsv"),
        (
            Source(
                "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
                # MD5 published by torchtext (pytorch/text, torchtext/datasets/sst2.py).
                known_hash="md5:9f81648d4199384278b86e315dac217c",
                archive=True,
                members=_SST2_MEMBERS,
                member_hashes={
                    # _EXTRACTED_FILES_MD5 in earlier revisions of that torchtext file; GluonNLP's
                    # GLUE SST-2 loader publishes the same MD5.
                    "SST-2/train.tsv": "md5:da409a0a939379ed32a470bc0f7fe99a",
                    # ../shared/data/README.md; that copy's MD5 equals torchtext's published
                    # dev.tsv MD5 (268856b4...), so it is GLUE's member byte for byte.
                    "SST-2/dev.tsv": "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0",
                },
            ),
        ),
    ),
    "vocab": Dataset(
        "vocab",
        ("vocab/bert_vocab_uncased.txt",),
        tuple(
            # sha256 from ../shared/data/README.md; the same file is Hugging Face's
            # bert-base-uncased vocab.txt (231,508 bytes, pinned with this hash by many projects).
            Source(url, known_hash="07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3")
            for url in (
                "https://storage.googleapis.com/tensorflow/keras-nlp/examples/bert/bert_vocab_uncased.txt",
                "https://huggingface.co/google-bert/bert-base-uncased/resolve/main/vocab.txt",
            )
        ),
    ),
    # sha256s published in Hugging Face datasets' datasets/wikitext/dataset_infos.json
    # (download_checksums of wikitext-{103,2}-raw-v1, for the S3 URL). The smerity.com mirror is
    # taken to serve the same archives (projects pinning it for WikiText-2 publish the S3 hash);
    # if it ever differs, the check rejects it rather than use it.
    "wikitext-103": _wikitext_dataset(
        "wikitext-103", "91c00ae287f0d699e18605c84afc9e45c192bc6b7797ff8837e5474655a33794"
    ),
    "wikitext-2": _wikitext_dataset(
        "wikitext-2", "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11"
    ),
    "movie_reviews": Dataset(
        "movie_reviews",
        ("corpus/movie_reviews.zip",),
        (
            Source(
                "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/movie_reviews.zip",
                # sha256 from ../shared/data/README.md (NLTK's file, kept zipped).
                known_hash="a41211ae685019137410268134db6a1a14428c89b671eb83056151a878539008",
            ),
        ),
    ),
    # Hu & Liu's labelled product-review sentences: an out-of-domain check, never training data.
    "product_reviews_1": Dataset(
        "product_reviews_1",
        ("sentiment/product_reviews_1.zip",),
        (
            Source(
                "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/product_reviews_1.zip",
                # sha256 from ../shared/data/README.md (NLTK's file, kept zipped).
                known_hash="627bfb0bb7c87586246d99b4402c3d7e4fb77ac14559d8695c283bd6850615ac",
            ),
        ),
    ),
    "product_reviews_2": Dataset(
        "product_reviews_2",
        ("sentiment/product_reviews_2.zip",),
        (
            Source(
                "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/product_reviews_2.zip",
                # sha256 from ../shared/data/README.md (NLTK's file, kept zipped).
                known_hash="272b08fe130882e5867aa7ecc69a65616099183c4ccc10374a62c271801b0bc1",
            ),
        ),
    ),
    # General-domain English beside the in-domain reviews.
    "brown": Dataset(
        "brown",
        ("corpus/brown.zip",),
        (
            Source(
                "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/brown.zip",
                # sha256 from ../shared/data/README.md (NLTK's file, kept zipped).
                known_hash="9b275f9b3b95d7bd66ccfb7cd259f445a13bbe5d1f4107aba09fd3e8364bafa6",
            ),
        ),
    ),
    "abc": Dataset(
        "abc",
        ("corpus/abc.zip",),
        (
            Source(
                "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/abc.zip",
                # sha256 from ../shared/data/README.md (NLTK's file, kept zipped).
                known_hash="129bb6001beb828049a90a59b7dd3c2f0594a47012e48fc5177dfae38e658565",
            ),
        ),
    ),
    "webtext": Dataset(
        "webtext",
        ("corpus/webtext.zip",),
        (
            Source(
                "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/webtext.zip",
                # sha256 from ../shared/data/README.md (NLTK's file, kept zipped).
                known_hash="9e32dbae4879464b8f420a0dc721855bb26167b720d7695588d2ca2aeadf501a",
            ),
        ),
    ),
}


class _SourceFailed(Exception):
    """One source could not deliver; the message is the reason shown to the user."""


_SOURCE_ERRORS = (
    requests.RequestException, ValueError, OSError, zipfile.BadZipFile, EOFError, zlib.error,
    _SourceFailed,
)


def _check_source(dataset, source):
    """Refuse a source that would not produce exactly the dataset's files, or write outside."""
    targets = set(source.members.values()) if source.archive else {dataset.files[0]}
    if not source.archive and len(dataset.files) != 1:
        raise ValueError(f"{dataset.name}: a plain-file source needs a one-file dataset.")
    if targets != set(dataset.files):
        raise ValueError(
            f"{dataset.name}: source {source.url} would produce {sorted(targets)}, "
            f"expected {sorted(dataset.files)}."
        )
    for target in targets:
        parts = PurePosixPath(target).parts
        if PurePosixPath(target).is_absolute() or ".." in parts:
            raise ValueError(f"{dataset.name}: target {target!r} must stay inside data_dir.")


def _as_source(item):
    return item if isinstance(item, Source) else Source(**item)


def _cache_name(url):
    # Two mirrors may share a base name but serve different bytes: key the cache by URL.
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    base = url.rstrip("/").rsplit("/", 1)[-1] or "download"
    return f"{digest}-{base}"


def _split_hash(known_hash):
    """"md5:abc" -> ("md5", "abc"); a bare digest is sha256, as in pooch."""
    algorithm, _, expected = known_hash.rpartition(":")
    return (algorithm or "sha256").lower(), expected.lower()


def _describe(exc, url, timeout):
    """Turn an exception raised while downloading into a short reason for the user."""
    if isinstance(exc, _SourceFailed):
        return str(exc)
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"{exc.response.status_code} {exc.response.reason}"
    # A stall mid-body surfaces as a ConnectionError wrapping urllib3's ReadTimeoutError.
    stalled = isinstance(exc, requests.ConnectionError) and "timed out" in str(exc).lower()
    if isinstance(exc, requests.Timeout) or stalled:
        return f"timed out after {timeout:g} s"
    if isinstance(exc, requests.RequestException) and "IncompleteRead" in str(exc):
        match = re.search(r"IncompleteRead\((\d+) bytes read, (\d+) more expected\)", str(exc))
        if match:
            got, more = int(match[1]), int(match[2])
            return f"truncated: connection closed after {got} of {got + more} bytes"
        return f"truncated: {str(exc).splitlines()[0]}"
    if isinstance(exc, requests.ConnectionError):
        return _connection_reason(exc, url)
    if isinstance(exc, ValueError):
        # pooch's message: "<ALG> hash of downloaded file (...) ... expected X but got Y."
        match = re.search(r"^(\w+) hash .*expected (\S+) but got (\w+)", str(exc))
        if match:
            return f"{match[1].lower()} mismatch: expected {match[2]}, got {match[3]}"
    if isinstance(exc, (zipfile.BadZipFile, EOFError, zlib.error)):
        return f"bad zip archive: {exc}"
    return f"{type(exc).__name__}: {exc}"


def _connection_reason(exc, url):
    """Name the underlying cause (DNS, refused, reset) instead of urllib3's nested repr."""
    import urllib3.exceptions  # requests depends on urllib3

    cause = exc.args[0] if exc.args else None
    cause = getattr(cause, "reason", cause)  # MaxRetryError wraps the real error
    if isinstance(cause, urllib3.exceptions.NameResolutionError):
        return f"cannot resolve host {urlsplit(url).hostname!r} (no network or DNS?)"
    text = str(cause or exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Connection reset" in text:
        return "connection reset"
    return f"connection failed: {text.splitlines()[0]}"


def _temporary_sibling(target):
    """An open file beside `target` whose name the loaders never match (hidden, `.part`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.NamedTemporaryFile(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
    )


def _copy_to_temporary(reader, target, known_hash, what):
    """Copy `reader` to a temporary file beside `target`, checking `known_hash` if given."""
    algorithm, expected = _split_hash(known_hash) if known_hash else ("sha256", None)
    digest = hashlib.new(algorithm)
    with _temporary_sibling(target) as out:
        try:
            for chunk in iter(lambda: reader.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
            out.flush()
            # The rename must not land before the bytes do, or a crash could leave a short file.
            os.fsync(out.fileno())
        except BaseException:
            out.close()
            os.unlink(out.name)
            raise
    if expected is not None and digest.hexdigest() != expected:
        os.unlink(out.name)
        raise _SourceFailed(
            f"{algorithm} mismatch for {what}: expected {expected}, got {digest.hexdigest()}"
        )
    return Path(out.name)


def _install(download, source, dataset, data_dir):
    """Write the source's files into `data_dir`: all to temporary names first, then rename."""
    temporaries = []
    try:
        if source.archive:
            try:
                with zipfile.ZipFile(download) as archive:
                    names = set(archive.namelist())
                    for member, target in source.members.items():
                        if member not in names:
                            raise _SourceFailed(f"the archive has no member {member!r}")
                        # ZipFile checks each member's CRC-32 as it is read to the end.
                        with archive.open(member) as reader:
                            temporary = _copy_to_temporary(
                                reader, data_dir / target, source.member_hashes.get(member), member
                            )
                        temporaries.append((temporary, data_dir / target))
            except (zipfile.BadZipFile, EOFError, zlib.error, _SourceFailed):
                # The cached archive is unusable: drop it so the next attempt downloads again.
                Path(download).unlink(missing_ok=True)
                raise
        else:
            # Copied, not moved: the verified download stays in the cache for a later re-fetch.
            target = data_dir / dataset.files[0]
            with open(download, "rb") as reader:
                temporaries.append((_copy_to_temporary(reader, target, None, target.name), target))
        for temporary, target in temporaries:
            os.replace(temporary, target)
    finally:
        for temporary, _ in temporaries:
            temporary.unlink(missing_ok=True)


def _progressbar_available():
    return importlib.util.find_spec("tqdm") is not None


def fetch(name, data_dir, cache_dir=None, sources=None, timeout=DEFAULT_TIMEOUT, progressbar=True):
    """Make `data_dir` hold dataset `name`'s files, downloading from the first source that works.

    If `data_dir` already holds every file of the dataset, returns at once without any network
    access (files are only ever renamed into place complete, so being there means being whole).

    Args:
        name: a key of `DATASETS`: "sst2", "vocab", "wikitext-103", "wikitext-2", "movie_reviews",
            "brown", "abc", "webtext", "product_reviews_1", "product_reviews_2".
        data_dir: the data folder (created if missing).
        cache_dir: where downloads are kept; default the user cache, `pooch.os_cache("nbhelpers")`.
        sources: replaces the registry's sources (`Source` objects or dicts of their fields),
            tried in order; they must produce the same files.
        timeout: seconds to wait for a connection or for the next bytes (not the whole download).
        progressbar: show a tqdm progress bar when tqdm is installed.

    Returns:
        A `FetchReport`: the full paths, the URL used (None if already present), the failures.

    Raises:
        AcquisitionError: every source failed; the message lists each URL with what it returned
            and the full paths of the files to place by hand.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose from {sorted(DATASETS)}.")
    dataset = DATASETS[name]
    sources = [_as_source(s) for s in (sources if sources is not None else dataset.sources)]
    for source in sources:
        _check_source(dataset, source)
    data_dir = Path(data_dir).expanduser().resolve()
    paths = [data_dir / f for f in dataset.files]
    if all(p.is_file() for p in paths):
        return FetchReport(name, paths, None, [])

    if cache_dir is None:
        cache_dir = pooch.os_cache("nbhelpers")
    cache = Path(cache_dir).expanduser().resolve() / name
    downloader = pooch.HTTPDownloader(
        progressbar=bool(progressbar) and _progressbar_available(), timeout=timeout
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    for source in sources:
        try:
            # pooch streams to a temporary name in `cache` and moves it into place only after
            # the checksum matched, so a cached file is always a complete, verified download.
            download = pooch.retrieve(
                source.url,
                known_hash=source.known_hash,
                fname=_cache_name(source.url),
                path=cache,
                downloader=downloader,
            )
            _install(download, source, dataset, data_dir)
        # Only failures a source can cause; anything else is a bug and should surface as itself.
        except _SOURCE_ERRORS as exc:
            reason = _describe(exc, source.url, timeout)
            logger.warning("%s: %s failed: %s", name, source.url, reason)
            failures.append((source.url, reason))
            continue
        return FetchReport(name, paths, source.url, failures)
    raise AcquisitionError(_failure_message(dataset, sources, failures, paths, data_dir))


def _failure_message(dataset, sources, failures, paths, data_dir):
    lines = [f"Could not download dataset {dataset.name!r}: every source failed."]
    if not failures:
        lines.append("  (no sources were given)")
    for number, (url, reason) in enumerate(failures, start=1):
        lines.append(f"  {number}. {url}: {reason}")
    lines.append(
        f"Place these files by hand in {data_dir} (e.g. copied from a machine that can download them):"
    )
    origin = sources[0] if sources else None
    for relative, path in zip(dataset.files, paths):
        if path.is_file():
            continue
        where = ""
        if origin is not None and origin.archive:
            member = next(m for m, t in origin.members.items() if t == relative)
            where = f"  (member {member} of {origin.url})"
        elif origin is not None:
            where = f"  (from {origin.url})"
        lines.append(f"  {path}{where}")
    return "\n".join(lines)


def _sources_from_environment():
    text = os.environ.get(SOURCES_ENV)
    if not text:
        return {}
    try:
        table = json.loads(text)
        return {name: [Source(**item) for item in items] for name, items in table.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise UserError(f"{SOURCES_ENV} is not a JSON object of dataset name -> list of sources "
                        f"(fields url, known_hash, archive, members, member_hashes): {exc}.") from None


def main(argv=None):
    """Command line: `python -m nbhelpers.acquire --data-dir DIR [--cache-dir DIR] NAME ...`.

    Args:
        argv: the arguments (default `sys.argv[1:]`).

    Returns:
        The exit status: 0 when every dataset is in place, 1 otherwise.
    """
    parser = argparse.ArgumentParser(
        prog="python -m nbhelpers.acquire",
        description="Download datasets into a data folder, verifying checksums.",
    )
    parser.add_argument("names", nargs="+", metavar="NAME", choices=[*DATASETS, "all"],
                        help=f"datasets to fetch: {', '.join(DATASETS)}, or all")
    parser.add_argument("--data-dir", required=True, help="the data folder to fill")
    parser.add_argument("--cache-dir", default=None, help="where downloads are kept")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds to wait for a connection or the next bytes")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir} is a file, not a folder: pass the folder to fill (it is created if needed).")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    names = list(DATASETS) if "all" in args.names else list(dict.fromkeys(args.names))
    overrides = _sources_from_environment()
    status = 0
    for name in names:
        try:
            report = fetch(name, args.data_dir, cache_dir=args.cache_dir,
                           sources=overrides.get(name), timeout=args.timeout)
        except AcquisitionError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        origin = f"downloaded from {report.source}" if report.source else "already present"
        for path in report.paths:
            print(f"{name}: {path} ({origin})")
    return status


if __name__ == "__main__":
    sys.exit(run_command(main, "nbhelpers.acquire"))
