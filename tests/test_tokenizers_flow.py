"""The shipped T5 and Qwen3 tokenizers: ids, Qwen3's added tokens and chat template, copies, licence notes."""

import hashlib
import json
from pathlib import Path

import pytest

from diffdiff.errors import DiffdiffError
from diffdiff.models.tokenizer import FAMILY_TOKENIZERS, TOKENIZERS, load_tokenizer, write_tokenizer_files

T5_SHA256 = "6cd1badb7467cdab971403bbeb1945070ca385652385a2b6549f672b08089dfc"
QWEN3_ADDED = {151665: "<tool_response>", 151666: "</tool_response>", 151667: "<think>", 151668: "</think>"}


@pytest.fixture(scope="module")
def t5():
    return load_tokenizer("t5")


@pytest.fixture(scope="module")
def qwen3():
    return load_tokenizer("qwen3")


def test_t5_ids_and_file(t5):
    assert t5("a photo of a cat").input_ids == [3, 9, 1202, 13, 3, 9, 1712, 1]
    assert (t5.pad_token_id, t5.eos_token_id, len(t5)) == (0, 1, 32100)
    digest = hashlib.sha256((TOKENIZERS / "t5" / "tokenizer.json").read_bytes()).hexdigest()
    assert digest == T5_SHA256


def test_qwen3_ids_and_added_tokens(qwen3):
    assert qwen3("a photo of a cat").input_ids == [64, 6548, 315, 264, 8251]
    assert len(qwen3) == 151669
    assert qwen3.convert_ids_to_tokens(list(QWEN3_ADDED)) == list(QWEN3_ADDED.values())
    assert qwen3("<think>a</think>").input_ids == [151667, 64, 151668]  # one token each
    config = json.loads((TOKENIZERS / "qwen3" / "tokenizer_config.json").read_text())
    for index, content in QWEN3_ADDED.items():
        assert config["added_tokens_decoder"][str(index)] == {
            "content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": False}
    assert qwen3.pad_token == "<|endoftext|>" and qwen3.eos_token == "<|im_end|>"
    assert "processor_class" not in config


def test_qwen3_chat_template_is_qwen3s(qwen3):
    messages = [{"role": "user", "content": "a cat"}]
    thinking = qwen3.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         enable_thinking=True)
    assert thinking == "<|im_start|>user\na cat<|im_end|>\n<|im_start|>assistant\n"
    plain = qwen3.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                      enable_thinking=False)
    assert plain == thinking + "<think>\n\n</think>\n\n"
    assert "You are a helpful assistant" not in qwen3.chat_template  # Qwen2.5's default system prompt


@pytest.mark.parametrize("kind", ["t5", "qwen3"])
def test_written_folders_load_and_carry_the_licence(tmp_path, kind):
    folder = write_tokenizer_files(tmp_path / "tokenizer_2", kind)
    licence = (folder / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    assert "END OF TERMS AND CONDITIONS" in licence
    reference = load_tokenizer(kind)
    copy = type(reference).from_pretrained(str(folder), local_files_only=True)
    assert copy("a photo of a cat").input_ids == reference("a photo of a cat").input_ids


def test_family_tokenizers():
    assert FAMILY_TOKENIZERS["sd3"] == ("clip", "clip-pad0", "t5")
    for family in ("flux", "flux-schnell", "flux-fill"):
        assert FAMILY_TOKENIZERS[family] == ("clip", "t5")
    assert FAMILY_TOKENIZERS["z-image"] == ("qwen3",)
    with pytest.raises(DiffdiffError, match="unknown tokenizer kind"):
        load_tokenizer("t6")


def test_clip_kinds_unchanged():
    assert load_tokenizer("clip").pad_token == "<|endoftext|>"
    assert load_tokenizer("clip-pad0").pad_token == "!"


def test_nothing_refers_to_the_shared_data_folder():
    root = Path(__file__).resolve().parent.parent
    paths = [*(TOKENIZERS / "t5").iterdir(), *(TOKENIZERS / "qwen3").iterdir(),
             root / "diffdiff" / "models" / "tokenizer.py", root / "scripts" / "build_tokenizers.py"]
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert "/work/shared" not in text and "../shared" not in text, path
