"""llama.cpp (llama-cpp-python) on a GGUF file as it is: one row of the ``llm`` benchmark.

Run in ``.venv-llamacpp`` as ``python bench/peers/llamacpp.py MODEL.gguf < job.json``; prints one
JSON line. The token ids come from the job (the same for every runner); the timing protocol and
the perplexity are ``bench.llm``'s. Only the last position's logits are computed while timing
(``logits_all=False``), as edge and onnxruntime-genai do.
"""

import json
import resource
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.llm import mean_nll, timed_generation  # noqa: E402
from edge.device.llm import token_nll  # noqa: E402  (numpy only: the same scoring as edge's)

import llama_cpp  # noqa: E402
from llama_cpp import Llama  # noqa: E402


def main() -> None:
    job = json.load(sys.stdin)
    path = sys.argv[1]
    common = dict(model_path=path, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=job["threads"],
                  n_threads_batch=job["threads"], n_gpu_layers=0, seed=0, verbose=False)
    llm = Llama(logits_all=False, **common)  # n_ctx >= 512: Gemma 3's sliding window

    def logits():  # the last evaluated position's, read from the context (no copy)
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))

    def prefill(ids):
        llm.reset()
        llm.eval(ids)
        return logits()

    def step(token):
        llm.eval([token])
        return logits()

    timing = timed_generation(prefill, step, job)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del llm
    scorer = Llama(logits_all=True, **common)

    def score(ids):
        scorer.reset()
        scorer.eval(ids)
        return token_nll(np.asarray(scorer.scores[: len(ids) - 1], np.float64), np.asarray(ids[1:]))

    accuracy = mean_nll(score, job)
    print(json.dumps({"runtime": f"llama.cpp (llama-cpp-python {llama_cpp.__version__}), {Path(path).name} as is",
                      **timing, **accuracy, "peak_rss_mb": round(peak, 1)}))


if __name__ == "__main__":
    main()
