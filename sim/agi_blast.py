"""Many AGI() runs at once from one thread over raw non-blocking sockets and epoll: the
simulator's Asterisk side for throughput benchmarks.

Why not FastAgiCall.run() on asyncio: a Python event loop costs the driver about as much
CPU per connection as the gateway under test spends, so a benchmark would measure the
driver. Real Asterisk does this in C, one thread per call. Here each run is still a
FastAgiCall (the same env block bytes and the same answer to every command, so what the
server sees is byte for byte what FastAgiCall.run() would send); only the socket work is
done by hand: connect, write the env block, read command lines, write the replies, and
end when the server closes, as res_agi.c does. Like res_agi.c (launch_netscript and
setup_env call ast_agi_send once per line), the env block goes out one write per line by
default, so the server sees the reads a real Asterisk causes: a dozen or more per block
on a loopback under load, where one write would make it a single read.

A *flow* is a generator standing for one channel's dialplan: it yields the FastAgiCall
of each AGI() in turn and receives its outcome (e.g. `authorize`, then `release` with
the lease the first one set). `run(flows, concurrency)` keeps `concurrency` flows going
until all are done and reports the latency of every AGI() run.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

from sim.fastagi import FastAgiCall, FastAgiOutcome

Flow = Generator[FastAgiCall, FastAgiOutcome, None]

_READ = select.EPOLLIN | select.EPOLLRDHUP
_WRITE = select.EPOLLOUT
_INPUT = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR


@dataclass
class BlastReport:
    runs: int = 0
    failures: int = 0  # runs that could not connect or ended with AGISTATUS FAILURE
    latencies: dict[str, list[float]] = field(default_factory=dict)  # per script, seconds


class _Run:
    __slots__ = ("call", "connected", "flow", "out", "sock", "started")

    def __init__(self, flow: Flow, call: FastAgiCall) -> None:
        self.flow = flow
        self.call = call
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.out: list[bytes] = []  # writes still to make, one send() each
        self.connected = False  # the first bytes of the env block went out
        self.started = time.perf_counter()

    def flush(self) -> bool:
        """Send what the socket takes, a write at a time; True once all went out."""
        out, send = self.out, self.sock.send
        while out:
            head = out[0]
            try:
                sent = send(head)
            except BlockingIOError:
                return False
            self.connected = True
            if sent < len(head):
                out[0] = head[sent:]
                return False
            del out[0]
        return True


class AgiBlast:
    """One `run` at a time; not thread-safe."""

    def __init__(self, *, timeout: float = 10.0, line_writes: bool = True) -> None:
        self._timeout = timeout
        self._line_writes = line_writes  # the env block a write per line, as res_agi.c
        self._poll = select.epoll()
        self._runs: dict[int, _Run] = {}
        self._flows: Iterator[Flow] = iter(())
        self._report = BlastReport()

    def run(self, flows: Iterator[Flow], concurrency: int) -> BlastReport:
        self._flows, self._report = flows, BlastReport()
        try:
            for _ in range(concurrency):
                if not self._next_flow():
                    break
            while self._runs:
                events = self._poll.poll(self._timeout)
                if not events:
                    raise TimeoutError(f"no AGI progress in {self._timeout}s "
                                       f"({len(self._runs)} runs in flight)")
                for fd, mask in events:
                    run = self._runs.get(fd)
                    if run is not None:
                        self._on_event(run, mask)
        finally:
            for run in self._runs.values():
                self._poll.unregister(run.sock.fileno())
                run.sock.close()
            self._runs.clear()
        return self._report

    def close(self) -> None:
        self._poll.close()

    def _next_flow(self) -> bool:
        for flow in self._flows:
            call = next(flow, None)
            if call is not None:
                self._start(flow, call)
                return True
        return False

    def _start(self, flow: Flow, call: FastAgiCall) -> None:
        run = _Run(flow, call)
        code = run.sock.connect_ex((call.host, call.port))
        if code not in (0, errno.EINPROGRESS):
            self._finished(run, call.failed_to_connect())
            return
        block = call.start()
        run.out = block.splitlines(keepends=True) if self._line_writes else [block]
        self._runs[run.sock.fileno()] = run
        self._poll.register(run.sock.fileno(), _WRITE | _READ)

    def _on_event(self, run: _Run, mask: int) -> None:
        sock, call = run.sock, run.call
        eof = False
        try:
            if run.out and mask & _WRITE and run.flush():
                self._poll.modify(sock.fileno(), _READ)
            if mask & _INPUT:
                data = sock.recv(65536)
                if data:
                    call.feed(data)
                else:
                    eof = True
            replies: list[bytes] = []
            while (line := call.take_line(eof)) is not None:
                replies.extend(call.answer(line))
            if replies:
                pending = bool(run.out)
                run.out.append(b"".join(replies))  # one ast_agi_send per reply
                if not pending and not run.flush():
                    self._poll.modify(sock.fileno(), _WRITE | _READ)
        except BlockingIOError:
            return  # woken with nothing to read after all
        except OSError:  # refused, or reset by the server
            self._finished(run, call.outcome() if run.connected else call.failed_to_connect())
            return
        if eof:
            self._finished(run, call.outcome())

    def _finished(self, run: _Run, outcome: FastAgiOutcome) -> None:
        fd = run.sock.fileno()
        if self._runs.pop(fd, None) is not None:
            self._poll.unregister(fd)
        run.sock.close()
        report = self._report
        report.runs += 1
        if outcome.status == "FAILURE":
            report.failures += 1
        report.latencies.setdefault(run.call.script, []).append(
            time.perf_counter() - run.started)
        try:
            call = run.flow.send(outcome)
        except StopIteration:
            self._next_flow()
            return
        self._start(run.flow, call)


__all__ = ["AgiBlast", "BlastReport", "Flow"]
