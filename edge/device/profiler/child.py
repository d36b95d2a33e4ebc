"""One configuration, measured in a process of its own: ``python -m edge.device.profiler.child``.

The request comes in as JSON on stdin; the outcome goes to the file the request names (the
runtimes write to stdout and stderr themselves). The sequence, in order: pin the CPUs, import
the runtime (RSS after imports), open the session through ``edge.device.runtime`` (init time, RSS),
idle baseline with the meter running, first inference, warm-up, reset the RSS high-water mark,
the timed loop inside the meter's start/stop (continued, untimed, until the metered window is as
long as the idle one), VmHWM, then the same loop around a no-op call for the loop's own cost.
``spawn`` is the parent's side.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OVERHEAD_RUNS = 100_000  # no-op calls timed for the loop's own cost (about 10 ms in all)
_INTERPRETERS = {"litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}


def spawn(request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; a crash or a timeout becomes ``{"error": ...}``."""
    result = Path(request["result"])
    try:
        done = subprocess.run([sys.executable, "-m", "edge.device.profiler.child"], input=json.dumps(request),
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"the measuring process ran past {timeout_s:g} s and was stopped"}
    if done.returncode == 0 and result.is_file():
        return json.loads(result.read_text(encoding="utf-8"))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    why = lines[-1].strip() if lines else "no message"
    code = done.returncode
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"  # a crash inside the runtime
    return {"error": f"the measuring process failed ({how}): {why}"}


def timed(call: Callable[[Any], Any], arg: Any, runs: int | None, duration_ns: int | None = None) -> list[int]:
    """``perf_counter_ns`` around each call: ``runs`` calls, or calls until ``duration_ns`` has passed."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    add = samples.append
    if duration_ns is None:
        for _ in range(runs or 0):
            start = clock()
            call(arg)
            add(clock() - start)
        return samples
    end = clock() + duration_ns
    while True:
        start = clock()
        call(arg)
        stop = clock()
        add(stop - start)
        if stop >= end:
            return samples


def _noop(arg: Any) -> None:
    return None


def measure(request: dict[str, Any]) -> dict[str, Any]:
    from edge.core import schema
    from edge.core.catalog import Knobs
    from edge.device import thermal
    from edge.device.profiler import measures, stats

    if request.get("affinity") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, request["affinity"])  # before the runtime starts its thread pool
    runtime = _import_runtime(request["runtime"])
    rss_imports = measures.rss_mb()
    start = time.perf_counter_ns()
    knobs = schema.load(Knobs, request.get("knobs") or {}, "the measuring request")
    session = runtime.open(Path(request["artifact"]), threads=request["threads"], optimization=request["optimization"],
                           knobs=knobs)
    init_ns = time.perf_counter_ns() - start
    rss_init = measures.rss_mb()
    if request.get("generation"):  # a language model: time to first token, then one call per token
        call, feeds, shapes, guessed = _generation(request, session)
    else:
        feeds, shapes, guessed = _feeds(request, session, runtime)
        call = session.run
    energy = measures.Energy(request["meters"], request["root"])
    before = thermal.snapshot(request["root"])
    energy.idle(request["idle_s"])  # the session is open and no runtime thread has run yet
    first = timed(call, feeds, 1)[0]
    timed(call, feeds, request["warmup"])
    tokens = feeds if request.get("generation") else None
    if tokens is not None:
        tokens.clear()  # the warm-up's tokens are not the measured ones
    reset = measures.reset_peak()
    energy.start()
    duration = request.get("duration_s")
    samples = timed(call, feeds, request.get("runs"), int(duration * 1e9) if duration else None)
    metered = len(samples) + energy.keep_busy(call, feeds, request["idle_s"])
    if tokens is not None:  # per-token latency is the decode steps'; time to first token is reported apart
        samples = tokens.decode_ns or samples
    energy.stop()
    peak = measures.peak_mb()
    after = thermal.snapshot(request["root"])
    overhead = timed(_noop, feeds, OVERHEAD_RUNS)
    return {
        "pid": os.getpid(),
        "version": runtime.version(),
        "settings": measures.runtime_settings(session, request["threads"], knobs.disabled_optimizers),
        "latency_ms": {"init": round(init_ns / 1e6, 6), "first": round(first / 1e6, 6), "warmup_count": request["warmup"],
                       **stats.summary(samples), "samples": stats.to_ms(samples)},
        "throughput_per_s": stats.throughput(samples),
        "loop_overhead_ms": {"per_iteration": stats.summary(overhead)["mean"],
                             "method": "same timing loop around a no-op call"},
        "memory_mb": measures.memory(rss_imports, rss_init, peak, reset),
        "energy": energy.to_dict(metered),
        "thermal": measures.thermal_record(before, after),
        "input_shapes": shapes,
        "guessed_axes": guessed,
        "generation": feeds.summary() if request.get("generation") else None,
    }


def _import_runtime(name: str):
    """The backend, with its runtime module already imported so "after imports" includes it."""
    import importlib

    from edge.device.runtime import BACKENDS, backend

    chosen = backend(name)
    try:
        importlib.import_module(_INTERPRETERS.get(name, BACKENDS[name].module))
    except ImportError:
        pass  # tflite-runtime under numpy 2 fails inside; open() reports it as MissingDependencyError
    return chosen


def _feeds(request: dict[str, Any], session, runtime) -> tuple[dict[str, Any], dict[str, list[int]], list[str]]:
    """Inputs checked and laid out the way ``edge.Model`` does it, once, outside the timed loop;
    with the shapes the caller's side had (before any layout change) and the axes whose size was guessed."""
    import numpy as np

    from edge.core.errors import EdgeError
    from edge.core.specs import DimSizes, TensorSpec, random_inputs, resolve_sizes
    from edge.device.model import Choice, Model

    specs = [TensorSpec.from_json(s) for s in request["specs"]] if request.get("specs") else session.inputs
    choice = Choice(Path(request["artifact"]).name, runtime.name, "", request["threads"], request["affinity"], "profile")
    model = Model(session, specs, session.outputs, choice, request.get("layouts"))
    guessed: list[str] = []
    try:
        if request.get("input_file"):
            from edge.device.inputs import from_file

            given = from_file(Path(request["input_file"]), model, {})
        else:
            sizes, guessed = resolve_sizes(specs, request.get("dims") or {})
            given = random_inputs(specs, DimSizes(sizes), 0, request["seed"])
        feeds = model.prepare(given)
    except EdgeError as exc:
        exc.user_input = True  # the parent re-raises it: every configuration would fail the same way
        raise
    return feeds, {name: list(np.shape(value)) for name, value in given.items()}, guessed


class _Tokens:
    """A language model's timed unit: one generated token. The first call of a generation reads the
    prompt and yields the first token (time to first token); each later call one more token."""

    def __init__(self, decoder: Any, prompt: list[int], new_tokens: int) -> None:
        self.decoder, self.prompt, self.new_tokens = decoder, prompt, new_tokens
        self.left, self.ttft_ns, self.decode_ns, self._token = 0, [], [], 0

    def clear(self) -> None:
        self.left, self.ttft_ns, self.decode_ns = 0, [], []

    def step(self, _: Any = None) -> None:
        start = time.perf_counter_ns()
        if self.left == 0:  # a new generation: the prompt from an empty cache
            self.decoder.reset()
            logits = self.decoder.forward(self.prompt)
            self.left = self.new_tokens
            into = self.ttft_ns
        else:
            logits = self.decoder.forward([self._token])
            into = self.decode_ns
        self._token = int(logits.argmax())
        self.left -= 1
        into.append(time.perf_counter_ns() - start)

    def summary(self) -> dict[str, Any]:
        from edge.device.profiler import stats

        decode = stats.summary(self.decode_ns) if self.decode_ns else None
        return {"prompt_tokens": len(self.prompt), "new_tokens": self.new_tokens, "generations": len(self.ttft_ns),
                "ttft_ms": stats.summary(self.ttft_ns) if self.ttft_ns else None, "decode_ms_per_token": decode,
                "decode_tokens_per_s": stats.throughput(self.decode_ns),
                "method": "greedy; the timed unit is one token: the first of each generation includes reading the "
                          "prompt (time to first token), the others are single-token decode steps"}


def _generation(request: dict[str, Any], session) -> tuple[Any, Any, dict[str, list[int]], list[str]]:
    import numpy as np

    from edge.core.bundle import Generation
    from edge.device.llm import Decoder

    generation = Generation(**request["generation"])
    count, new = request["prompt_tokens"], request["new_tokens"]
    if count + new > generation.context:
        from edge.core.errors import UsageError

        error = UsageError(f"{count} prompt tokens and {new} new ones exceed the model's context of {generation.context}",
                           hint="lower --prompt-tokens or --new-tokens")
        error.user_input = True
        raise error
    vocab = request["vocab"]
    prompt = np.random.default_rng(request["seed"]).integers(min(3, vocab - 1), vocab, size=count).tolist()
    tokens = _Tokens(Decoder(session, generation), prompt, new)
    return tokens.step, tokens, {"input_ids": [1, count]}, []


def main() -> None:
    from edge.core.errors import EdgeError

    request = json.load(sys.stdin)
    try:
        outcome = measure(request)
    except EdgeError as exc:
        outcome = {"pid": os.getpid(), "error": exc.message, "error_type": type(exc).__name__, "hint": exc.hint,
                   "exit_code": exc.exit_code, "user_input": getattr(exc, "user_input", False)}
    Path(request["result"]).write_text(json.dumps(outcome, allow_nan=False), encoding="utf-8")


if __name__ == "__main__":
    main()
