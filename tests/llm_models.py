"""Tiny random-weight causal language models of each architecture edge exports, saved as a
transformers folder with a real byte-level BPE tokenizer trained on the repository's own
sentences: real transformers code, real export, no hub."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT

ARCHITECTURES = ("llama", "gemma3", "qwen2", "qwen3", "gpt2")


def tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    lines = (ROOT / "examples/minilm/calib.txt").read_text().splitlines()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=1000, special_tokens=["<pad>", "<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.chat_template = "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}" \
                         "{% if add_generation_prompt %}<assistant>{% endif %}"
    return fast


def model(arch: str):
    import torch
    import transformers as tf

    torch.manual_seed(0)
    common = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                  tie_word_embeddings=True, initializer_range=0.3)  # wide weights: greedy text is not one repeated token
    if arch == "llama":
        return tf.LlamaForCausalLM(tf.LlamaConfig(**common))
    if arch == "gemma3":  # a window of 8 tokens, so that the tests cross it
        config = tf.Gemma3TextConfig(**{**common, "head_dim": 32, "sliding_window": 8,
                                        "layer_types": ["sliding_attention", "full_attention"]})
        return tf.Gemma3ForCausalLM(config)
    if arch == "qwen2":
        return tf.Qwen2ForCausalLM(tf.Qwen2Config(**{**common, "tie_word_embeddings": False}))
    if arch == "qwen3":
        return tf.Qwen3ForCausalLM(tf.Qwen3Config(**common, head_dim=32))
    if arch == "gpt2":
        return tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=1000, n_embd=64, n_layer=2, n_head=4, n_positions=256,
                                                bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.3))
    raise ValueError(arch)


def save(arch: str, folder: Path) -> Path:
    model(arch).eval().save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    return folder
