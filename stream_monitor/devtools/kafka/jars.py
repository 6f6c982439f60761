"""The broker's jars: fetched once from Maven Central with ``mvn`` (``pom.xml`` beside this file) into the cache,
atomically and under a file lock, and the ``java`` that runs them."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from stream_monitor.devtools.kafka.errors import DevKafkaError
from stream_monitor.devtools.kafka.locations import _MARKER, _POM, DEFAULT_KAFKA_VERSION, cache_dir
from stream_monitor.devtools.kafka.logs import _tail_text

__all__ = ["ensure_jars"]


def _require(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise DevKafkaError(f"`{tool}` was not found on PATH; {hint}")
    return found


def _java() -> str:
    """JAVA_HOME's java if set (as Kafka's own scripts do), else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return _require("java", "the broker needs Java 17+ (Debian: apt-get install openjdk-17-jre-headless).")


def _fingerprint(version: str) -> str:
    """Identifies what a libs dir was fetched for, so editing pom.xml or the version refetches."""
    return hashlib.sha256(_POM.read_bytes() + version.encode()).hexdigest()


def ensure_jars(version: str = DEFAULT_KAFKA_VERSION, *, timeout: float = 900.0) -> Path:
    """Return the directory of jars for Kafka ``version``, fetching them with Maven if needed.

    The fetch goes to a temporary directory that is renamed into place, and the ``libs.complete`` marker
    is written last: an interrupted fetch is redone, never used half-done. A file lock makes concurrent
    callers (pytest-xdist workers, a CLI fetch beside a test run) wait for one fetch instead of racing.
    """
    home = cache_dir() / f"kafka-{version}"
    libs, marker = home / "libs", home / _MARKER
    want = _fingerprint(version)

    def complete() -> bool:
        return libs.is_dir() and marker.is_file() and marker.read_text().strip() == want

    if complete():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete():  # another process fetched while we waited
            return libs
        mvn = _require("mvn", "fetching the Kafka jars needs Maven 3.6+ (Debian: apt-get install maven).")
        _java()  # fail early and clearly: mvn without java prints a less helpful error
        marker.unlink(missing_ok=True)
        shutil.copyfile(_POM, home / "pom.xml")  # the package may be read-only; Maven wants its own dir
        staging = Path(tempfile.mkdtemp(prefix="libs.", dir=home))
        try:
            cmd = [
                mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(home / "pom.xml"),
                "dependency:copy-dependencies", f"-DoutputDirectory={staging}", f"-Dkafka.version={version}",
            ]  # fmt: skip
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired as exc:
                raise DevKafkaError(f"fetching Kafka {version} jars took over {timeout:.0f} s") from exc
            if done.returncode != 0:
                output = _tail_text(done.stdout + done.stderr, 40)
                raise DevKafkaError(f"`{' '.join(cmd[:7])} ...` failed (exit {done.returncode}):\n{output}")
            for jar in (f"kafka_2.13-{version}.jar", f"kafka-clients-{version}.jar"):
                if not (staging / jar).is_file():
                    raise DevKafkaError(f"Maven finished but {jar} is missing from {staging}")
            if libs.exists():
                shutil.rmtree(libs)
            staging.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        tmp_marker = home / f"{_MARKER}.tmp"
        tmp_marker.write_text(want + "\n")
        tmp_marker.replace(marker)
    return libs
