"""Benchmark the dataset prep against the original notebook's way, on loopback only.

    python -m bench.bench_prep [--repeat 3] [--doc-count 693]

1. Builds (once; cached under build/bench/) a synthetic archive shaped like the real ``dataset.zip``: 693 + 100
   UK-Abs judgments of ~14,500 words, their summaries, 7,030 + 100 IN-Abs pairs and IN-Ext; ~93 MB zipped.
2. Serves it from a loopback HTTP server and runs moto's S3 server in its own process.
3. Runs, each in a child process measured with ``os.wait4`` (wall time, CPU time, peak RSS):
   * the notebook's way: download the whole file, ``unzip -q`` everything, concatenate ``doc_count`` files in
     ``os.listdir`` order with the summaries as validation, upload both files with boto3's ``upload_file``;
   * ours (``python -m lambdas.dataset_prep``) with the same validation (summaries), with the default
     (held_out), and again once the manifest exists (nothing to do).
4. Prints a markdown table (medians over ``--repeat`` interleaved rounds; peak RSS is the maximum).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/bench_prep.py` as well as `python -m bench.bench_prep`
    sys.path.insert(0, str(ROOT))

CACHE = ROOT / "build" / "bench"
#: Shaped like the real archive (DESIGN.md §2): counts from the dataset's README, lengths from its statistics
#: (UK-Abs train: 10,015,333 words in 693 judgments). The generator yields ~97 % of the asked words.
SPEC: dict[str, Any] = {
    "uk_train_docs": 693,
    "uk_test_docs": 100,
    "in_abs_train_docs": 7030,
    "in_abs_test_docs": 100,
    "in_ext_docs": 50,
    "judgment_words": (5000, 25000),
    "summary_words": (600, 1500),
    "in_judgment_words": (1500, 7000),
    "seed": 7,
    "compresslevel": 6,
    "phrase_zipf": 1.05,  # tuned so the zip is ~93 MB, like the real one (per-file deflate ratio ~3-3.5)
    "generator": 2,  # bump when the text generator changes
}
DUMMY_KEY = "bench"  # moto accepts any credentials


def build_archive() -> tuple[Path, str]:
    from fakes.archive import TextGenerator, build_synthetic_archive

    key = hashlib.sha256(json.dumps(SPEC, sort_keys=True).encode()).hexdigest()[:12]
    path = CACHE / f"dataset-{key}.zip"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())["md5"]
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"building {path.name} (once; a few minutes) ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    spec = {k: v for k, v in SPEC.items() if k not in ("generator", "phrase_zipf")}
    generator = TextGenerator(SPEC["seed"], phrase_zipf=SPEC["phrase_zipf"])
    built = build_synthetic_archive(path.with_suffix(".partial"), generator=generator, **spec)
    built.path.replace(path)
    meta.write_text(json.dumps({"md5": built.md5, "size": built.size, "spec": SPEC}, indent=2))
    print(f"built in {time.monotonic() - started:.0f} s: {built.size / 1e6:.1f} MB", file=sys.stderr, flush=True)
    return path, built.md5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def aws_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=DUMMY_KEY,
        AWS_SECRET_ACCESS_KEY=DUMMY_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_ENDPOINT_URL_S3=endpoint,
        PYTHONPATH=str(ROOT),
    )
    return env


@dataclass
class Measurement:
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    peak_disk_mb: float
    uploaded_mb: float
    downloads: int
    returncode: int
    stderr_tail: str = ""


@dataclass
class Row:
    label: str
    runs: list[Measurement] = field(default_factory=list)


class Launcher:
    """Starts the measured commands from a small process started before the benchmark loads anything.

    Linux carries the pre-exec address space's high-water RSS into the new program's ``ru_maxrss`` (exec_mmap);
    spawned straight from this process (holding the archive and boto3, ~140 MB), every child would report at
    least that. The launcher is a bare interpreter, so the children's ``wait4`` figures are their own.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def run(self, cmd: list[str], env: dict[str, str], stdout: Path, stderr: Path) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        request = {"cmd": cmd, "cwd": str(ROOT), "env": env, "stdout": str(stdout), "stderr": str(stderr)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait()


LAUNCHER_CODE = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    r = json.loads(line)
    with open(r["stdout"], "w") as out, open(r["stderr"], "w") as err:
        started = time.monotonic()
        p = subprocess.Popen(r["cmd"], cwd=r["cwd"], env=r["env"], stdout=out, stderr=err)
        _, status, u = os.wait4(p.pid, 0)
        wall = time.monotonic() - started
    print(json.dumps({"wall": wall, "cpu": u.ru_utime + u.ru_stime, "maxrss_kb": u.ru_maxrss,
                      "returncode": os.waitstatus_to_exitcode(status)}), flush=True)
"""


def measure(
    launcher: Launcher, cmd: list[str], env: dict[str, str], workdir: Path, poll_file: Path | None
) -> tuple[Measurement, str]:
    """Run ``cmd``: wall clock, CPU and peak RSS from wait4; the peak size of ``poll_file`` by polling."""
    out_path = workdir.parent / f"{workdir.name}.out"
    err_path = workdir.parent / f"{workdir.name}.err"
    peak_disk = 0
    stop = threading.Event()

    def poll() -> None:
        nonlocal peak_disk
        while not stop.wait(0.1):
            with contextlib.suppress(FileNotFoundError):
                peak_disk = max(peak_disk, poll_file.stat().st_size) if poll_file else 0

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        result = launcher.run(cmd, env, out_path, err_path)
    finally:
        stop.set()
        poller.join()
    stdout = out_path.read_text()
    stderr = err_path.read_text().strip()
    m = Measurement(
        wall_s=result["wall"],
        cpu_s=result["cpu"],
        max_rss_mb=result["maxrss_kb"] / 1024,
        peak_disk_mb=peak_disk / 1e6,
        uploaded_mb=0.0,
        downloads=0,
        returncode=result["returncode"],
        stderr_tail=stderr.splitlines()[-1] if stderr else "",
    )
    return m, stdout


def uploaded_bytes(client: Any, bucket: str) -> int:
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        total += sum(int(obj["Size"]) for obj in page.get("Contents", []))
    return total


def run_benchmark(args: argparse.Namespace) -> None:
    launcher = Launcher()  # first, while this process is still small
    import boto3

    from fakes.http_server import BlobServer

    archive, md5 = build_archive()
    data = archive.read_bytes()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen(
        [sys.executable, "-c", "from moto.server import main; main()", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = aws_env(endpoint)
    client = boto3.session.Session(
        aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY, region_name="us-east-1"
    ).client("s3", endpoint_url=endpoint)
    for _ in range(100):
        try:
            client.list_buckets()
            break
        except Exception:
            time.sleep(0.1)
    rows = {
        "notebook": Row("notebook's way: download, `unzip -q` all, concatenate, `upload_file` (summaries)"),
        "ours_summaries": Row("ours, validation=summaries (same work as the notebook)"),
        "ours_held_out": Row("ours, validation=held_out (default)"),
        "ours_rerun": Row("ours, rerun with the manifest present (expected_md5 given)"),
        "ours_small": Row("ours, validation=held_out, doc_count=50 (memory does not scale with output)"),
    }
    scratch = Path(tempfile.mkdtemp(prefix="bench-prep-"))
    load_before = os.getloadavg()
    try:
        with BlobServer(data) as server:
            for round_no in range(args.repeat):
                order = ["notebook", "ours_summaries", "ours_held_out", "ours_small"]
                if round_no % 2:
                    order.reverse()  # alternate, so neither way always runs on a warmer machine
                for name in order:
                    bucket = f"bench-{name.replace('_', '-')}-{round_no}"
                    client.create_bucket(Bucket=bucket)
                    workdir = scratch / f"{name}-{round_no}"
                    workdir.mkdir()
                    before = server.get_count
                    if name == "notebook":
                        cmd = [sys.executable, "-m", "bench.bench_prep", "--notebook-way", "--url", server.url,
                               "--bucket", bucket, "--workdir", str(workdir),
                               "--doc-count", str(args.doc_count)]  # fmt: skip
                        m, stdout = measure(launcher, cmd, env, workdir, None)
                        if m.returncode == 0:
                            m.peak_disk_mb = json.loads(stdout.strip().splitlines()[-1])["disk_bytes"] / 1e6
                    else:
                        validation = "summaries" if name == "ours_summaries" else "held_out"
                        doc_count = 50 if name == "ours_small" else args.doc_count
                        cmd = [sys.executable, "-m", "lambdas.dataset_prep", "--source-url", server.url,
                               "--bucket", bucket, "--s3-endpoint-url", endpoint, "--doc-count", str(doc_count),
                               "--validation", validation, "--expected-md5", md5, "--workdir", str(workdir),
                               "--quiet"]  # fmt: skip
                        m, _ = measure(launcher, cmd, env, workdir, workdir / "dataset.zip")
                    m.downloads = server.get_count - before
                    m.uploaded_mb = uploaded_bytes(client, bucket) / 1e6
                    rows[name].runs.append(m)
                    if m.returncode != 0:
                        raise SystemExit(f"{name} failed: {m.stderr_tail}")
                    if name == "ours_held_out":
                        before = server.get_count
                        rerun, _ = measure(launcher, cmd, env, workdir, workdir / "dataset.zip")
                        rerun.downloads = server.get_count - before
                        rerun.uploaded_mb = 0.0  # nothing is written (the tests check this with a spy client)
                        rows["ours_rerun"].runs.append(rerun)
                    shutil.rmtree(workdir, ignore_errors=True)
                    print(f"round {round_no + 1} {name}: {m.wall_s:.1f} s, {m.max_rss_mb:.0f} MB", file=sys.stderr)
    finally:
        launcher.close()
        moto.terminate()
        moto.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    load_after = os.getloadavg()
    print_table(rows, archive, md5, args, load_before, load_after)


def print_table(
    rows: dict[str, Row],
    archive: Path,
    md5: str,
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> None:
    size = archive.stat().st_size
    print(f"Archive: synthetic, {size / 1e6:.1f} MB zipped (md5 {md5}); doc_count={args.doc_count}; "
          f"{args.repeat} round(s), medians (peak RSS: maximum); load average before/after "
          f"{load_before[0]:.1f}/{load_after[0]:.1f} on {os.cpu_count()} CPUs.\n")  # fmt: skip
    print("| run | wall time (s) | CPU time (s) | peak RSS (MB) | peak disk (MB) | uploaded (MB) | downloads |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows.values():
        if not row.runs:
            continue
        med = statistics.median
        print(
            f"| {row.label} | {med(r.wall_s for r in row.runs):.1f} | {med(r.cpu_s for r in row.runs):.1f} "
            f"| {max(r.max_rss_mb for r in row.runs):.0f} | {med(r.peak_disk_mb for r in row.runs):.0f} "
            f"| {med(r.uploaded_mb for r in row.runs):.1f} | {max(r.downloads for r in row.runs)} |"
        )
    print(f"\nMachine: {platform.platform()}, Python {platform.python_version()}")


# ----------------------------------------------------------------------------------- the notebook's way


def notebook_way(args: argparse.Namespace) -> None:
    """What src/fine_tuning.ipynb does, in one process (wget, unzip -q, create_dataset, upload_data)."""
    import urllib.request

    import boto3

    workdir: Path = args.workdir
    archive = workdir / "dataset.zip"
    with urllib.request.urlopen(args.url, timeout=60) as response, archive.open("wb") as fh:
        shutil.copyfileobj(response, fh, 1 << 20)
    unzip = shutil.which("unzip")
    if unzip:
        subprocess.run([unzip, "-q", str(archive), "-d", str(workdir)], check=True)
    else:  # pragma: no cover - machines without unzip
        import zipfile

        with zipfile.ZipFile(archive) as zf:
            zf.extractall(workdir)
    dataset = workdir / "dataset"

    def create_dataset(new_dataset_file: Path, source: Path, doc_count: int) -> None:
        docs = 0
        with new_dataset_file.open("w") as new_file:
            for filename in os.listdir(source):  # noqa: PTH208 - the notebook's (unordered) listing
                if docs < doc_count:
                    docs += 1
                    file_path = source / filename
                    if file_path.is_file():
                        new_file.write(file_path.read_text())
                        new_file.write("\n" + "-" * 65 + "\n")

    create_dataset(dataset / "train.txt", dataset / "UK-Abs/train-data/judgement", args.doc_count)
    create_dataset(dataset / "validation.txt", dataset / "UK-Abs/train-data/summary", args.doc_count)
    s3 = boto3.client("s3")
    s3.upload_file(str(dataset / "train.txt"), args.bucket, "gptj-6b/train/train.txt")
    s3.upload_file(str(dataset / "validation.txt"), args.bucket, "gptj-6b/validation/validation.txt")
    disk = sum(p.stat().st_size for p in workdir.rglob("*") if p.is_file())
    print(json.dumps({"disk_bytes": disk}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (medians are reported)")
    parser.add_argument("--doc-count", type=int, default=693)
    parser.add_argument("--build-only", action="store_true", help="only build (or find) the cached archive")
    parser.add_argument("--notebook-way", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.notebook_way:
        notebook_way(args)
    elif args.build_only:
        path, md5 = build_archive()
        print(f"{path} md5 {md5}")
    else:
        run_benchmark(args)


if __name__ == "__main__":
    main()
