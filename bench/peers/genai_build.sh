#!/usr/bin/env bash
# Build onnxruntime-genai CPU models of Gemma 3 270M with the genai model builder (0.18.0).
#
# Usage:  genai_build.sh OUT_DIR HF_DIR
#   OUT_DIR  receives OUT_DIR/int4 and OUT_DIR/int8 (genai model folders) and OUT_DIR/cache
#   HF_DIR   float32 transformers folder of the model (bench/llm.py writes it from the GGUF)
# Environment:
#   PYTHON      interpreter of the genai venv   (default .venv-genai/bin/python)
#   FLAT_DIR    where the flattened HF copy goes (default OUT_DIR/gemma-hf-flat)
#   PRECISIONS  which builds to run              (default "int4 int8")
#
# The venv (make bench creates it) has: onnxruntime-genai==0.18.0 onnx_ir torch==2.13.0 (CPU)
# "transformers>=5,<6".
#
# Known traps handled here:
#  * Gemma 3 configs written by transformers 5.x nest RoPE per layer type
#    (rope_parameters = {full_attention: {...}, sliding_attention: {...}}); the 0.18.0 builder expects
#    the flat form and fails with KeyError: 'rope_type'. Step 1 flattens config.json into
#    rope_theta / rope_local_base_freq, but transformers 5.x re-nests those keys when it loads the
#    config (and drops rope_local_base_freq), so step 2 runs the builder through a small wrapper that
#    applies the same flattening to the loaded config object before the builder reads it.
#  * `python -m onnxruntime_genai.models.builder --help` crashes on Python 3.11 (a stray '%' in the
#    help text); the options used below are documented in builder.py's get_args().
#  * int4: algo_config=rtn. The default algorithm combined with matmul_mixed_precision=last_matmul:int8
#    writes a model that does not load; plain RTN (asymmetric, uint4) is used here.
#  * prune_lm_head=true: logits only for the last prompt position (the 262k x 640 output layer
#    dominates otherwise). Such a model cannot give all-position logits; bench/peers/genai.py
#    therefore scores perplexity token by token.
set -euo pipefail

OUT=$(realpath -m "${1:?usage: genai_build.sh OUT_DIR [HF_DIR]}")
HF=$(realpath "${2:?usage: genai_build.sh OUT_DIR HF_DIR}")
PY=${PYTHON:-.venv-genai/bin/python}
FLAT=$(realpath -m "${FLAT_DIR:-$OUT/gemma-hf-flat}")
PRECISIONS=${PRECISIONS:-"int4 int8"}
mkdir -p "$OUT"

echo "== versions"
"$PY" -c 'import onnxruntime_genai, onnxruntime, transformers, torch, onnx_ir; print("onnxruntime-genai", onnxruntime_genai.__version__, "| onnxruntime", onnxruntime.__version__, "| transformers", transformers.__version__, "| torch", torch.__version__, "| onnx_ir", onnx_ir.__version__)'

# ---------------------------------------------------------------------------------------------
# 1. Copy the HF folder and flatten the nested RoPE settings in config.json.
# ---------------------------------------------------------------------------------------------
echo "== flat copy: $HF -> $FLAT"
"$PY" - "$HF" "$FLAT" <<'PYEOF'
import json, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for name in os.listdir(src):
    s, d = os.path.join(src, name), os.path.join(dst, name)
    if os.path.isfile(s) and not (os.path.exists(d) and os.path.getsize(d) == os.path.getsize(s)):
        shutil.copy2(s, d)
path = os.path.join(dst, "config.json")
cfg = json.load(open(path))
rp = cfg.get("rope_parameters")
if isinstance(rp, dict) and "full_attention" in rp:
    cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp["full_attention"]["rope_theta"]                 # global layers
    cfg["rope_local_base_freq"] = rp["sliding_attention"]["rope_theta"]    # sliding-window layers
    for kind in ("full_attention", "sliding_attention"):
        if rp[kind].get("rope_type", "default") != "default":
            sys.exit(f"unexpected rope_type for {kind}: {rp[kind]}")
    json.dump(cfg, open(path, "w"), indent=2)
print("rope_theta", cfg.get("rope_theta"), "rope_local_base_freq", cfg.get("rope_local_base_freq"))
PYEOF

# ---------------------------------------------------------------------------------------------
# 2. Builder wrapper: same CLI as `python -m onnxruntime_genai.models.builder`, plus the
#    in-memory flattening of the loaded transformers config.
# ---------------------------------------------------------------------------------------------
WRAPPER="$OUT/genai_builder_flat_rope.py"
cat > "$WRAPPER" <<'PYEOF'
"""Run the onnxruntime-genai model builder with Gemma 3's nested RoPE config flattened."""
import onnxruntime_genai.models.builder as builder

_get_hf_details = builder.get_hf_details


def get_hf_details_flat(*args, **kwargs):
    details = _get_hf_details(*args, **kwargs)
    config = details["hf_config"]
    rp = getattr(config, "rope_parameters", None)
    if isinstance(rp, dict) and "full_attention" in rp and "sliding_attention" in rp:
        config.rope_theta = rp["full_attention"]["rope_theta"]
        config.rope_local_base_freq = rp["sliding_attention"]["rope_theta"]
        config.rope_parameters = {"rope_type": rp["full_attention"].get("rope_type", "default"),
                                  "rope_theta": config.rope_theta}
        print(f"[flat-rope] rope_theta={config.rope_theta} rope_local_base_freq={config.rope_local_base_freq}")
    return details


builder.get_hf_details = get_hf_details_flat   # looked up at call time by parse_extra_options

if __name__ == "__main__":                       # mirrors builder.py's own __main__ block
    args = builder.get_args()
    extra_options = builder.parse_extra_options(
        args.model_name, args.input, args.output, args.precision, args.execution_provider,
        args.cache_dir, args.extra_options,
        builder_config_version=args.builder_config_version, target_options=args.target_options,
        drafter_options=args.drafter_options, speculative_options=args.speculative_options,
        runtime_config=args.runtime_config, search=args.search)
    builder.create_model(args.model_name, args.input, args.output, args.precision,
                         args.execution_provider, args.cache_dir, **extra_options)
PYEOF

# ---------------------------------------------------------------------------------------------
# 3. Builds.
# ---------------------------------------------------------------------------------------------
build() {  # build NAME PRECISION EXTRA_OPTION...
    local name=$1 precision=$2; shift 2
    echo "== build $name: -p $precision -e cpu --extra_options $*"
    rm -rf "$OUT/$name"
    local t0=$EPOCHREALTIME
    "$PY" "$WRAPPER" -i "$FLAT" -o "$OUT/$name" -p "$precision" -e cpu -c "$OUT/cache" \
        --extra_options "$@" 2>&1 | tee "$OUT/build_$name.log"
    local t1=$EPOCHREALTIME
    printf '== built %s in %.1f s, %s\n' "$name" "$(awk "BEGIN{print $t1 - $t0}")" "$(du -sh "$OUT/$name" | cut -f1)"
}

for p in $PRECISIONS; do
    case $p in
        # int4 RTN, asymmetric (uint4 + zero points), block 32, accuracy_level 4 (CPU default)
        int4) build int4 int4 algo_config=rtn is_symmetric=false prune_lm_head=true ;;
        # int8 weight-only (MatMulNBits 8-bit), builder defaults otherwise
        int8) build int8 int8 prune_lm_head=true ;;
        *) echo "unknown precision $p" >&2; exit 2 ;;
    esac
done
ls -la "$OUT"/int* 2>/dev/null || true
