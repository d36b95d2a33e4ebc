"""onnxruntime-genai on a model folder its builder wrote: one row of the ``llm`` benchmark.

Run in ``.venv-genai`` as ``python bench/peers/genai.py MODEL_DIR < job.json``; prints one JSON
line. Threads and spinning (off, which measured faster for genai) go through ``Config.overlay``.
The builder pruned the output layer to the last position, so the perplexity is scored one token at
a time through the generator (teacher forcing), over the job's token ids.
"""

import json
import resource
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.llm import mean_nll, timed_generation  # noqa: E402
from edge.device.llm import token_nll  # noqa: E402  (numpy only: the same scoring as edge's)

import onnxruntime_genai as og  # noqa: E402

MAX_LENGTH = 512  # bounds prompt + new tokens; Gemma 3 needs at least its 512-token sliding window


def main() -> None:
    job = json.load(sys.stdin)
    config = og.Config(sys.argv[1])
    config.clear_providers()  # the CPU execution provider
    options = {"intra_op_num_threads": job["threads"], "inter_op_num_threads": 1,
               "session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"}
    config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
    model = og.Model(config)
    state = {}

    def fresh():
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=False, max_length=MAX_LENGTH)
        state["g"] = og.Generator(model, params)

    def feed(ids):
        state["g"].append_tokens(np.asarray(ids, dtype=np.int32))
        return np.asarray(state["g"].get_logits()).reshape(-1)

    def prefill(ids):
        fresh()
        return feed(ids)

    timing = timed_generation(prefill, lambda token: feed([token]), job)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def score(ids):
        fresh()
        rows = np.stack([feed([token]) for token in ids[:-1]]).astype(np.float64)
        return token_nll(rows, np.asarray(ids[1:]))

    accuracy = mean_nll(score, job)
    print(json.dumps({"runtime": f"onnxruntime-genai {og.__version__}", **timing, **accuracy,
                      "peak_rss_mb": round(peak, 1)}))


if __name__ == "__main__":
    main()
