"""One file's analysis in a child process: a crash, a hang or a kill costs that file alone.

:func:`analyse_isolated` forks the calling process (a Spark Python worker, or any Python
process that has imported the extractor), analyses the file in the child and reads the result
through a pipe. The child starts with everything the parent has loaded, numba's compiled
kernels included, so a fork costs milliseconds. What the parent reports when the child does
not deliver:

- ``crashed``: the child died, by a signal (a decoder's SIGSEGV, an abort, the kernel's
  out-of-memory SIGKILL) or with a non-zero exit status;
- ``timeout``: the child ran past its time limit and was killed. The limit is
  ``timeout_s``, or when that is 0, :data:`BASE_TIMEOUT_S` plus one second per second of
  audio to analyse, known once the child has decoded the file.

The child leads a process group of its own (a decoder it starts, ffmpeg, dies with it), dies
with its parent (a Spark worker killed with its task leaves no analysis behind), is the
kernel's first choice when memory runs out, and writes its temporary files in a folder that
the parent removes. Resident memory: the child shares the worker's pages until it writes to
them, but a monitor that sums the RSS of a process tree (YARN's default) counts them twice.

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

from fmagenre.features import TrackFeatures, analyse

#: Seconds a child gets before its file is decoded, and on top of the audio's duration after.
BASE_TIMEOUT_S = 60.0
#: Seconds of analysis allowed per second of decoded audio, with an automatic limit.
SECONDS_PER_AUDIO_SECOND = 1.0
_HEADER = struct.Struct("!cI")
_PR_SET_PDEATHSIG = 1


def fault_for(path: str, setting: str) -> str | None:
    """The fault ``setting`` (``"KIND:TEXT,KIND:TEXT"``) asks for on ``path``, if any."""
    for item in filter(None, (part.strip() for part in setting.split(","))):
        kind, _, text = item.partition(":")
        if text and text in path:
            return kind
    return None


def _send(fd: int, tag: bytes, payload: bytes) -> None:
    data = _HEADER.pack(tag, len(payload)) + payload
    while data:
        data = data[os.write(fd, data) :]


def _crash(fault: str) -> None:
    if fault == "segfault":
        import ctypes

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


def _child(fd: int, content: bytes, fault: str | None, settings: dict, parent: int, temporary: str):
    """The child's whole life: analyse, send, exit without running the parent's cleanup."""
    status = 1
    try:
        _detach(parent, temporary)
        if fault:
            faulthandler.disable()  # a real crash dumps its traceback to the log; this one not
            _crash(fault)

        def decoded(seconds: float) -> None:
            _send(fd, b"d", struct.pack("!d", seconds))

        try:
            result = analyse(content, on_decoded=decoded, **settings)
        except Exception as exc:  # a bug met on one file is that file's error row
            detail = f"feature_error: {type(exc).__name__}: {exc}"
            result = TrackFeatures(None, "error", detail, "feature_error")
        _send(fd, b"r", pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
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


def analyse_isolated(
    content: bytes,
    *,
    max_duration: float,
    fma_compat: bool,
    timeout_s: float = 0.0,
    fault: str | None = None,
) -> TrackFeatures:
    """:func:`fmagenre.features.analyse` of ``content`` in a forked child; never raises.

    Parameters
    ----------
    content : bytes
        The file's bytes.
    max_duration, fma_compat
        As for :func:`fmagenre.features.analyse`.
    timeout_s : float
        Time limit of the child in seconds; 0 scales it with the audio's duration.
    fault : str or None
        A fault the child injects (see the module's doc); tests only.
    """
    settings = {"max_duration": max_duration, "fma_compat": fma_compat}
    temporary = tempfile.mkdtemp(prefix="fmagenre-analysis-")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        read_fd, write_fd = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
    except OSError as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        detail = f"fork_failed: could not start the analysis process: {exc}"
        return TrackFeatures(None, "error", detail, "fork_failed")
    if pid == 0:
        os.close(read_fd)
        _child(write_fd, content, fault, settings, os.getppid(), temporary)
    os.close(write_fd)
    with contextlib.suppress(OSError):  # also done by the child: whoever comes first
        os.setpgid(pid, pid)
    started = time.monotonic()
    deadline = started + (timeout_s or BASE_TIMEOUT_S)
    buffer, result, analysed_s, reaped = b"", None, None, False
    poller = select.poll()
    poller.register(read_fd, select.POLLIN)
    try:
        while result is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                _kill(pid)
                os.waitpid(pid, 0)
                reaped = True
                limit = deadline - started
                detail = f"no result after {limit:.3g} s, the limit for this file"
                return TrackFeatures(
                    None, "error", f"timeout: {detail}", "timeout", analysed_s=analysed_s
                )
            data = os.read(read_fd, 1 << 20)
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
        _, wait_status = os.waitpid(pid, 0)
        reaped = True
    finally:
        os.close(read_fd)
        if not reaped:  # interrupted: leave no analysis running behind
            _kill(pid)
            os.waitpid(pid, 0)
        shutil.rmtree(temporary, ignore_errors=True)
    if result is not None:
        return result
    detail = _describe(wait_status)
    return TrackFeatures(None, "error", f"crashed: {detail}", "crashed", analysed_s=analysed_s)
