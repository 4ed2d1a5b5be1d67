"""Analysis in a child process: a crash, a hang or a kill costs one file alone.

:func:`analyse_isolated` hands a file to an analysing child of the calling process (a Spark
Python worker, or any Python process that has imported the extractor) and reads the result
through a pipe. The child is forked once and then analyses file after file, so that its
memory stays warm: it starts with everything the parent had loaded, numba's compiled kernels
included (call :func:`fmagenre.audio.numba_cache.warm_up` first), and a fork per file would cost
tens of milliseconds of copy-on-write faults. When the child does not deliver a file's
result, it is killed and the next file gets a new one; the parent reports:

- ``crashed``: the child died, by a signal (a decoder's SIGSEGV, an abort, the kernel's
  out-of-memory SIGKILL) or with a non-zero exit status;
- ``timeout``: the file's analysis ran past its time limit. The limit is ``timeout_s``, or
  when that is 0, :data:`BASE_TIMEOUT_S` plus one second per second of audio to analyse,
  known once the child has decoded the file.

The child leads a process group of its own (a decoder it starts, ffmpeg, dies with it), dies
with its parent (a Spark worker killed with its task leaves no analysis behind), is the
kernel's first choice when memory runs out, and writes its temporary files in a folder that
the parent removes when the child ends. In a Spark Python worker that folder lies in one of
the executor's local directories (``SPARK_LOCAL_DIRS``), which Spark deletes when the executor
ends: a worker that Spark kills leaves nothing behind in the system's temporary folder.
Resident memory: the child shares the worker's pages until it writes to them, but a monitor
that sums the RSS of a process tree (YARN's default) counts them twice.

Fault injection, for tests only: ``fault`` makes the child crash for real before it analyses
(``segfault``: a read of address 0; ``abort``: SIGABRT; ``kill``: SIGKILL, as the out-of-
memory killer sends; ``hang``: sleep forever). :func:`fault_for` reads the
``[extract] inject_fault`` setting.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import os
import pickle
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time

from fmagenre.audio.features import TrackFeatures, analyse
from fmagenre.audio.patches import PatchSettings
from fmagenre.platform.config import parse_faults

#: Seconds a child gets before its file is decoded, and on top of the audio's duration after.
BASE_TIMEOUT_S = 60.0
#: Seconds of analysis allowed per second of decoded audio, with an automatic limit.
SECONDS_PER_AUDIO_SECOND = 1.0
_HEADER = struct.Struct("!cI")
_PR_SET_PDEATHSIG = 1


def fault_for(path: str, setting: str) -> str | None:
    """The fault ``setting`` (``"KIND:TEXT,KIND:TEXT"``) asks for on ``path``, if any."""
    return next((kind for kind, text in parse_faults(setting) if text in path), None)


def _send(fd: int, tag: bytes, payload: bytes) -> None:
    for part in (_HEADER.pack(tag, len(payload)), payload):
        view = memoryview(part)  # a file's bytes are not copied again on partial writes
        while view:
            view = view[os.write(fd, view) :]


def _crash(fault: str) -> None:
    if fault == "segfault":
        ctypes.string_at(0)
    elif fault == "abort":
        os.abort()
    elif fault == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault == "hang":
        while True:
            time.sleep(3600)


def _detach(parent: int, temporary: str) -> None:
    """Make the child its own process group, killed with its parent, killed first on OOM."""
    os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as score:
        score.write("1000")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ["TMPDIR"] = tempfile.tempdir = temporary


def _read_exactly(fd: int, size: int) -> bytes | None:
    """``size`` bytes from ``fd``, or None at its end."""
    parts, left = [], size
    while left:
        part = os.read(fd, min(left, 1 << 24))
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _serve(requests: int, replies: int, parent: int, temporary: str) -> None:
    """The child's whole life: analyse each request, reply, exit at the requests' end without
    running the parent's cleanup."""
    status = 1
    try:
        _detach(parent, temporary)

        def decoded(seconds: float) -> None:
            _send(replies, b"d", struct.pack("!d", seconds))

        while (header := _read_exactly(requests, _HEADER.size)) is not None:
            payload = _read_exactly(requests, _HEADER.unpack(header)[1])
            if payload is None:
                break
            content, settings, fault = pickle.loads(payload)
            if fault:
                faulthandler.disable()  # a real crash dumps its traceback to the log; not this
                _crash(fault)
            try:
                result = analyse(content, on_decoded=decoded, **settings)
            except Exception as exc:  # a bug met on one file is that file's error row
                detail = f"feature_error: {type(exc).__name__}: {exc}"
                result = TrackFeatures(None, "error", detail, "feature_error")
            _send(replies, b"r", pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        status = 0
    finally:
        os._exit(status)


def _kill(pid: int) -> None:
    """SIGKILL to the child's process group (the child alone if it has none yet)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _describe(wait_status: int) -> str:
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        name = signal.Signals(number).name
        hint = ", as the out-of-memory killer does" if number == signal.SIGKILL else ""
        return f"the analysis process was killed by {name}{hint}"
    return f"the analysis process exited with status {os.waitstatus_to_exitcode(wait_status)}"


def temporary_root() -> str | None:
    """Where analysing children make their temporary folders: the first of Spark's local
    directories that Spark gives its Python workers, else None (the system's)."""
    for directory in os.environ.get("SPARK_LOCAL_DIRS", "").split(","):
        if directory and os.path.isdir(directory):
            return directory
    return None


class _Child:
    """The analysing child of this process: its pid, pipes and temporary folder."""

    def __init__(self) -> None:
        self.temporary = tempfile.mkdtemp(prefix="fmagenre-analysis-", dir=temporary_root())
        sys.stdout.flush()
        sys.stderr.flush()
        fds = []
        try:
            fds = [*os.pipe(), *os.pipe()]
            self.pid = os.fork()
        except OSError:
            for fd in fds:
                os.close(fd)
            shutil.rmtree(self.temporary, ignore_errors=True)
            raise
        request_read, self.requests, self.replies, reply_write = fds
        if self.pid == 0:
            os.close(self.requests)
            os.close(self.replies)
            _serve(request_read, reply_write, os.getppid(), self.temporary)
        os.close(request_read)
        os.close(reply_write)
        self.owner = os.getpid()
        with contextlib.suppress(OSError):  # also done by the child: whoever comes first
            os.setpgid(self.pid, self.pid)

    def stop(self, *, kill: bool) -> int:
        """End the child (at once with ``kill``, else once it has read its last request);
        return its wait status."""
        os.close(self.requests)
        if kill:
            _kill(self.pid)
        _, status = os.waitpid(self.pid, 0)
        os.close(self.replies)
        shutil.rmtree(self.temporary, ignore_errors=True)
        return status


_child: _Child | None = None


def shutdown() -> None:
    """End this process's analysing child, if any, and remove its temporary folder."""
    global _child
    if _child is not None and _child.owner == os.getpid():
        _child.stop(kill=False)
    _child = None


def analyse_isolated(
    content: bytes,
    *,
    max_duration: float,
    fma_compat: bool,
    timeout_s: float = 0.0,
    fault: str | None = None,
    window: float | None = None,
    hop: float | None = None,
    patches: PatchSettings | None = None,
    musicnn: bool = False,
) -> TrackFeatures:
    """:func:`fmagenre.audio.features.analyse` of ``content`` in the analysing child; never raises.

    Parameters
    ----------
    content : bytes
        The file's bytes.
    max_duration, fma_compat
        As for :func:`fmagenre.audio.features.analyse`.
    timeout_s : float
        Time limit of the analysis in seconds; 0 scales it with the audio's duration.
    fault : str or None
        A fault the child injects (see the module's doc); tests only.
    window, hop : float or None
        Also the features of windows, as :func:`fmagenre.audio.features.analyse` computes them.
    patches : PatchSettings or None
        Also the log-mel patches (of the track and of each window), which the child's reply
        carries in the result.
    musicnn : bool
        Also the musicnn family (of the track and of each window).
    """
    global _child
    if _child is None or _child.owner != os.getpid():
        try:
            _child = _Child()
        except OSError as exc:
            _child = None
            detail = f"fork_failed: could not start the analysis process: {exc}"
            return TrackFeatures(None, "error", detail, "fork_failed")
    child = _child
    settings = {"max_duration": max_duration, "fma_compat": fma_compat}
    if window is not None:
        settings.update(window=window, hop=hop)
    if patches is not None:
        settings["patches"] = patches
    if musicnn:
        settings["musicnn"] = True
    started = time.monotonic()
    deadline = started + (timeout_s or BASE_TIMEOUT_S)
    buffer, result, analysed_s, ended = b"", None, None, True
    try:
        _send(child.requests, b"q", pickle.dumps((content, settings, fault), protocol=5))
        poller = select.poll()
        poller.register(child.replies, select.POLLIN)
        while result is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                _child = None
                child.stop(kill=True)
                limit = deadline - started
                detail = f"no result after {limit:.3g} s, the limit for this file"
                return TrackFeatures(
                    None, "error", f"timeout: {detail}", "timeout", analysed_s=analysed_s
                )
            data = os.read(child.replies, 1 << 20)
            if not data:
                break
            buffer += data
            while len(buffer) >= _HEADER.size:
                tag, size = _HEADER.unpack_from(buffer)
                if len(buffer) < _HEADER.size + size:
                    break
                payload = buffer[_HEADER.size : _HEADER.size + size]
                buffer = buffer[_HEADER.size + size :]
                if tag == b"d":
                    (analysed_s,) = struct.unpack("!d", payload)
                    if not timeout_s:
                        deadline = time.monotonic() + (
                            BASE_TIMEOUT_S + SECONDS_PER_AUDIO_SECOND * analysed_s
                        )
                else:
                    result = pickle.loads(payload)
        ended = result is None
    except BrokenPipeError:  # the child died before it read the request
        ended = True
    finally:
        if ended and _child is child:  # died, or interrupted: leave no analysis behind
            _child = None
            wait_status = child.stop(kill=True)
    if result is not None:
        return result
    detail = _describe(wait_status)
    return TrackFeatures(None, "error", f"crashed: {detail}", "crashed", analysed_s=analysed_s)
