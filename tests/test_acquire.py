"""`nbhelpers.acquire` against a real HTTP server on 127.0.0.1 that misbehaves on purpose.

The server serves files built here: a good SST-2-shaped zip, a tampered one, truncated and
stalling responses, a 404. Each test checks what ends up on disk.
"""

import dataclasses
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nbhelpers import acquire, data
from nbhelpers.acquire import AcquisitionError, Source, fetch

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 1  # seconds; the slow paths wait longer than this
SLOW_SECONDS = 2.5

TRAIN = "sentence\tlabel\nhide new secretions from the parental units \t0\ncontains no wit \t0\n"
DEV = "sentence\tlabel\nit 's a charming and often affecting journey . \t1\nunflinchingly bleak \t0\n"
SST2_MEMBERS = {"SST-2/train.tsv": "sst2/train.tsv", "SST-2/dev.tsv": "sst2/dev.tsv"}
VOCAB = "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "##s"]) + "\n"


def _zip(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _sha256(payload):
    return hashlib.sha256(payload).hexdigest()


GOOD_ZIP = _zip({"SST-2/train.tsv": TRAIN, "SST-2/dev.tsv": DEV, "SST-2/test.tsv": "index\tsentence\n"})
# Valid zip, same layout, different bytes: what a tampered or silently updated mirror serves.
TAMPERED_ZIP = _zip({"SST-2/train.tsv": TRAIN.replace("0", "1"), "SST-2/dev.tsv": DEV})


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, payload, length=None):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests.append(self.path)
        files = server.files
        try:
            if self.path == "/slow.zip":
                time.sleep(SLOW_SECONDS)  # nothing at all before the client's timeout
                self._send(GOOD_ZIP, len(GOOD_ZIP))
            elif self.path == "/stall.zip":
                self._send(GOOD_ZIP[: len(GOOD_ZIP) // 2], len(GOOD_ZIP))
                time.sleep(SLOW_SECONDS)  # stalls mid-body
                self.wfile.write(GOOD_ZIP[len(GOOD_ZIP) // 2:])
            elif self.path == "/truncated.zip":
                # Promises the whole file, sends half, closes (HTTP/1.0 closes after the reply).
                self._send(GOOD_ZIP[: len(GOOD_ZIP) // 2], len(GOOD_ZIP))
            elif self.path == "/half-no-length.zip":
                # Half the file with no Content-Length: only the zip check can notice.
                self._send(GOOD_ZIP[: len(GOOD_ZIP) // 2])
            elif self.path.lstrip("/") in files:
                payload = files[self.path.lstrip("/")]
                self._send(payload, len(payload))
            else:
                self.send_error(404, "Not Found")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): expected


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # sleeping handlers must not hold up shutdown

    def handle_error(self, request, client_address):
        pass


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # A proxy from the environment must not intercept requests to the local server.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server():
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.lock = threading.Lock()
    httpd.requests = []
    httpd.files = {"good.zip": GOOD_ZIP, "tampered.zip": TAMPERED_ZIP, "vocab.txt": VOCAB.encode()}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}/{path}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _archive(url, known_hash=None, **extra):
    return Source(url, known_hash=known_hash, archive=True, members=SST2_MEMBERS, **extra)


def _files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file())


def _fetch(name, tmp_path, sources):
    return fetch(name, tmp_path / "data", cache_dir=tmp_path / "cache", sources=sources,
                 timeout=TIMEOUT, progressbar=False)


def test_good_archive_extracts_members_into_the_layout(server, tmp_path):
    report = _fetch("sst2", tmp_path, [_archive(server.url("good.zip"), _sha256(GOOD_ZIP))])

    data_dir = tmp_path / "data"
    assert report.source == server.url("good.zip") and report.failures == []
    assert report.paths == [data_dir / "sst2" / "train.tsv", data_dir / "sst2" / "dev.tsv"]
    assert (data_dir / "sst2" / "train.tsv").read_text() == TRAIN
    assert (data_dir / "sst2" / "dev.tsv").read_text() == DEV
    # Exactly the two files: no temporary names, no unrequested members.
    assert _files_under(data_dir) == ["sst2/dev.tsv", "sst2/train.tsv"]
    assert len(_files_under(tmp_path / "cache")) == 1  # the verified archive, no pooch temporaries
    assert data.load_sst2(data_dir, "dev") == (
        ["it 's a charming and often affecting journey . ", "unflinchingly bleak "], [1, 0]
    )


def test_wrong_checksum_is_rejected_and_the_mirror_used(server, tmp_path):
    good_hash = _sha256(GOOD_ZIP)
    report = _fetch("sst2", tmp_path, [
        _archive(server.url("tampered.zip"), good_hash),
        _archive(server.url("good.zip"), good_hash),
    ])

    assert (tmp_path / "data" / "sst2" / "train.tsv").read_text() == TRAIN
    assert report.source == server.url("good.zip")
    assert report.failures == [(
        server.url("tampered.zip"),
        f"sha256 mismatch: expected {good_hash}, got {_sha256(TAMPERED_ZIP)}",
    )]


@pytest.mark.parametrize("path, reason", [
    ("truncated.zip", f"truncated: connection closed after {len(GOOD_ZIP) // 2} of {len(GOOD_ZIP)} bytes"),
    ("missing.zip", "404 Not Found"),
    ("slow.zip", f"timed out after {TIMEOUT} s"),
    ("stall.zip", f"timed out after {TIMEOUT} s"),
    ("half-no-length.zip", "bad zip archive: File is not a zip file"),
])
def test_a_failing_source_is_recorded_and_the_next_one_tried(server, tmp_path, path, reason):
    # No hash on the failing source, so each failure is caught by the transfer or zip check itself.
    started = time.monotonic()
    report = _fetch("sst2", tmp_path, [_archive(server.url(path)), _archive(server.url("good.zip"))])

    assert report.failures == [(server.url(path), reason)]
    assert report.source == server.url("good.zip")
    assert (tmp_path / "data" / "sst2" / "dev.tsv").read_text() == DEV
    assert _files_under(tmp_path / "data") == ["sst2/dev.tsv", "sst2/train.tsv"]
    # Nothing broken stays cached to be trusted next time.
    assert _files_under(tmp_path / "cache") == [f"sst2/{acquire._cache_name(server.url('good.zip'))}"]
    assert time.monotonic() - started < SLOW_SECONDS + 1


def test_a_refused_connection_is_recorded(server, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    refused = f"http://127.0.0.1:{closed_port}/SST-2.zip"
    report = _fetch("sst2", tmp_path, [_archive(refused), _archive(server.url("good.zip"))])

    assert report.failures == [(refused, "connection refused")]
    assert (tmp_path / "data" / "sst2" / "train.tsv").read_text() == TRAIN


def test_every_source_failing_raises_one_error_naming_all_and_leaves_nothing(server, tmp_path):
    good_hash = _sha256(GOOD_ZIP)
    bad = {
        "missing.zip": "404 Not Found",
        "tampered.zip": f"sha256 mismatch: expected {good_hash}, got {_sha256(TAMPERED_ZIP)}",
        "truncated.zip": "truncated: connection closed after",
        "slow.zip": f"timed out after {TIMEOUT} s",
    }
    with pytest.raises(AcquisitionError) as caught:
        _fetch("sst2", tmp_path, [_archive(server.url(path), good_hash) for path in bad])

    message = str(caught.value)
    assert isinstance(caught.value, RuntimeError)
    for number, (path, reason) in enumerate(bad.items(), start=1):
        assert f"{number}. {server.url(path)}: {reason}" in message
    data_dir = (tmp_path / "data").resolve()
    assert str(data_dir / "sst2" / "train.tsv") in message
    assert str(data_dir / "sst2" / "dev.tsv") in message
    assert "member SST-2/dev.tsv" in message
    assert _files_under(data_dir) == []


def test_a_bad_member_checksum_installs_no_file_at_all(server, tmp_path):
    # train.tsv is fine and extracted first; dev.tsv fails its check, so neither may appear.
    source = _archive(server.url("good.zip"), member_hashes={"SST-2/dev.tsv": "0" * 64})
    with pytest.raises(AcquisitionError, match="sha256 mismatch for SST-2/dev.tsv: expected 0000"):
        _fetch("sst2", tmp_path, [source])
    assert _files_under(tmp_path / "data") == []


def test_files_already_present_mean_no_request_at_all(server, tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "sst2").mkdir(parents=True)
    (data_dir / "sst2" / "train.tsv").write_text("mine")
    (data_dir / "sst2" / "dev.tsv").write_text("mine too")

    report = _fetch("sst2", tmp_path, [_archive(server.url("good.zip"))])

    assert server.requests == []
    assert report.source is None and report.failures == []
    assert (data_dir / "sst2" / "train.tsv").read_text() == "mine"


def test_a_partial_data_dir_is_completed(server, tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "sst2").mkdir(parents=True)
    (data_dir / "sst2" / "train.tsv").write_text(TRAIN)

    report = _fetch("sst2", tmp_path, [_archive(server.url("good.zip"))])

    assert report.source == server.url("good.zip")
    assert (data_dir / "sst2" / "dev.tsv").read_text() == DEV


def test_a_cached_download_is_reused_after_data_dir_is_deleted(server, tmp_path):
    source = _archive(server.url("good.zip"), _sha256(GOOD_ZIP))
    _fetch("sst2", tmp_path, [source])
    for path in (tmp_path / "data" / "sst2").iterdir():
        path.unlink()

    _fetch("sst2", tmp_path, [source])

    assert server.requests == ["/good.zip"]
    assert (tmp_path / "data" / "sst2" / "train.tsv").read_text() == TRAIN


def test_a_plain_file_download_lands_where_the_loaders_read_it(server, tmp_path):
    sources = [Source(server.url("missing.txt")),
               Source(server.url("vocab.txt"), known_hash=_sha256(VOCAB.encode()))]
    report = _fetch("vocab", tmp_path, sources)

    data_dir = tmp_path / "data"
    assert report.failures == [(server.url("missing.txt"), "404 Not Found")]
    assert (data_dir / "vocab" / "bert_vocab_uncased.txt").read_text() == VOCAB
    assert _files_under(data_dir) == ["vocab/bert_vocab_uncased.txt"]
    vocabulary = data.find_vocabulary(data_dir)
    assert data.load_vocabulary(vocabulary)[:2] == ["[PAD]", "[UNK]"]


def test_sources_that_do_not_produce_the_dataset_files_are_refused(tmp_path):
    wrong = Source("http://127.0.0.1:9/x.zip", archive=True, members={"SST-2/dev.tsv": "sst2/dev.tsv"})
    with pytest.raises(ValueError, match="would produce"):
        fetch("sst2", tmp_path, sources=[wrong])
    escaping = Source("http://127.0.0.1:9/x.zip", archive=True,
                      members={"a": "sst2/train.tsv", "b": "sst2/../../dev.tsv"})
    with pytest.raises(ValueError):
        fetch("sst2", tmp_path, sources=[escaping])


def test_the_registry_is_complete_and_well_formed():
    assert set(acquire.DATASETS) == {"sst2", "vocab", "wikitext-103", "wikitext-2", "movie_reviews", *NLTK_PACKAGES}
    # The guide's URLs come first.
    assert acquire.DATASETS["sst2"].sources[0].url == "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
    assert acquire.DATASETS["wikitext-103"].sources[0].url.startswith("https://s3.amazonaws.com/")
    assert acquire.DATASETS["vocab"].sources[0].url.startswith("https://storage.googleapis.com/")
    for dataset in acquire.DATASETS.values():
        for source in dataset.sources:
            acquire._check_source(dataset, source)
            for known in [source.known_hash, *source.member_hashes.values()]:
                algorithm, _, digest = (known or "").rpartition(":")
                assert len(digest) == {"": 64, "md5": 32}[algorithm], (dataset.name, source.url)


def _cli(tmp_path, *args, sources=None):
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env.pop(acquire.SOURCES_ENV, None)
    if sources is not None:
        env[acquire.SOURCES_ENV] = json.dumps(sources)
    return subprocess.run(
        [sys.executable, "-m", "nbhelpers.acquire", "--data-dir", str(tmp_path / "data"),
         "--cache-dir", str(tmp_path / "cache"), "--timeout", str(TIMEOUT), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_cli_downloads_and_prints_where_files_went(server, tmp_path):
    good = {"url": server.url("good.zip"), "known_hash": _sha256(GOOD_ZIP), "archive": True,
            "members": SST2_MEMBERS}
    vocab = {"url": server.url("vocab.txt"), "known_hash": _sha256(VOCAB.encode())}
    result = _cli(tmp_path, "sst2", "vocab", sources={"sst2": [good], "vocab": [vocab]})

    assert result.returncode == 0, result.stderr
    data_dir = (tmp_path / "data").resolve()
    assert f"sst2: {data_dir / 'sst2' / 'train.tsv'} (downloaded from {server.url('good.zip')})" in result.stdout
    assert f"vocab: {data_dir / 'vocab' / 'bert_vocab_uncased.txt'}" in result.stdout
    assert (data_dir / "sst2" / "dev.tsv").read_text() == DEV

    again = _cli(tmp_path, "sst2", sources={"sst2": [good]})
    assert again.returncode == 0 and "(already present)" in again.stdout
    assert len(server.requests) == 2


def test_cli_failure_exits_nonzero_with_the_message(server, tmp_path):
    missing = {"url": server.url("missing.txt")}
    result = _cli(tmp_path, "vocab", sources={"vocab": [missing]})

    assert result.returncode == 1
    assert f"{server.url('missing.txt')}: 404 Not Found" in result.stderr
    assert str((tmp_path / "data").resolve() / "vocab" / "bert_vocab_uncased.txt") in result.stderr
    assert result.stdout == ""


# NLTK's data index packages: dataset name -> (file in data_dir, sha256 from ../shared/data/README.md).
NLTK_PACKAGES = {
    "product_reviews_1": ("sentiment/product_reviews_1.zip", "627bfb0bb7c87586246d99b4402c3d7e4fb77ac14559d8695c283bd6850615ac"),
    "product_reviews_2": ("sentiment/product_reviews_2.zip", "272b08fe130882e5867aa7ecc69a65616099183c4ccc10374a62c271801b0bc1"),
    "brown": ("corpus/brown.zip", "9b275f9b3b95d7bd66ccfb7cd259f445a13bbe5d1f4107aba09fd3e8364bafa6"),
    "abc": ("corpus/abc.zip", "129bb6001beb828049a90a59b7dd3c2f0594a47012e48fc5177dfae38e658565"),
    "webtext": ("corpus/webtext.zip", "9e32dbae4879464b8f420a0dc721855bb26167b720d7695588d2ca2aeadf501a"),
}
NLTK_CORPORA = "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/"
SHARED_DATA = ROOT.parent / "shared" / "data"


def _on_local_server(source, server):
    """The registry's source with its host replaced by the local server's (same path)."""
    path = source.url.split("://", 1)[1].split("/", 1)[1]
    return dataclasses.replace(source, url=server.url(path))


def test_the_nltk_packages_are_declared_like_movie_reviews():
    for name, (file, sha256) in NLTK_PACKAGES.items():
        dataset = acquire.DATASETS[name]
        assert dataset.files == (file,)
        assert dataset.sources == (acquire.Source(f"{NLTK_CORPORA}{name}.zip", known_hash=sha256),)
    assert acquire.DATASETS["movie_reviews"].sources[0].url == f"{NLTK_CORPORA}movie_reviews.zip"


@pytest.mark.parametrize("name", NLTK_PACKAGES)
def test_an_nltk_package_lands_zipped_where_the_loaders_look_and_its_checksum_is_enforced(server, tmp_path, name):
    # A zip built here in the product reviews' format, served at the registry URL's path.
    payload = _zip({f"{name}/kettle.txt": "spout[+2]##The spout pours well.\n", f"{name}/README.txt": "readme\n"})
    (registered,) = acquire.DATASETS[name].sources
    local = _on_local_server(registered, server)
    server.files[local.url.split("/", 3)[3]] = payload

    # The registry's checksum is that of NLTK's file, so these bytes are refused and nothing lands.
    with pytest.raises(AcquisitionError, match=f"sha256 mismatch: expected {registered.known_hash}"):
        _fetch(name, tmp_path, [local])
    assert _files_under(tmp_path / "data") == []

    report = _fetch(name, tmp_path, [dataclasses.replace(local, known_hash=_sha256(payload))])
    file = NLTK_PACKAGES[name][0]
    assert report.paths == [tmp_path / "data" / file] and _files_under(tmp_path / "data") == [file]
    assert (tmp_path / "data" / file).read_bytes() == payload  # kept zipped, as the loaders read it
    if file.startswith("sentiment/"):
        assert data.load_out_of_domain_sets(tmp_path / "data") == {f"{name}.zip": (["The spout pours well."], [1])}


@pytest.mark.parametrize("name", NLTK_PACKAGES)
def test_the_registry_checksums_accept_the_real_files(server, tmp_path, name):
    real = SHARED_DATA / NLTK_PACKAGES[name][0]
    if not real.is_file():
        pytest.skip(f"{real} is not here (only on the project's machines)")
    (registered,) = acquire.DATASETS[name].sources
    local = _on_local_server(registered, server)
    server.files[local.url.split("/", 3)[3]] = real.read_bytes()
    report = _fetch(name, tmp_path, [local])  # the registry's own checksum
    assert report.failures == [] and report.paths[0].read_bytes() == real.read_bytes()
