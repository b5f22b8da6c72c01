"""Prompt syntax: ComfyUI's and A1111's emphasis rules, escapes, unbalanced brackets, BREAK and LoRA tags."""

import pytest

from diffdiff.errors import DiffdiffError
from diffdiff.prompts import parse, split_lora_tags
from diffdiff.prompts.syntax import BREAK


def weights(text, style):
    return [(s.text, None if s.weight is None else round(s.weight, 6)) for s in parse(text, style)]


def test_round_brackets_and_explicit_weights_in_both_styles():
    for style in ("comfy", "a1111"):
        assert weights("a (red:1.5) ((fox)) cat", style) == [
            ("a ", 1.0), ("red", 1.5), (" ", 1.0), ("fox", 1.21), (" cat", 1.0)]
        assert weights("(a (b:0.5) c)", style)[0] == ("a ", 1.1)


def test_an_explicit_weight_inside_brackets_sets_in_comfy_and_multiplies_in_a1111():
    assert weights("((a:1.5))", "comfy") == [("a", 1.5)]
    assert weights("((a:1.5))", "a1111") == [("a", 1.65)]
    assert weights("(a (b:1.5) c)", "comfy") == [("a ", 1.1), ("b", 1.5), (" c", 1.1)]
    assert weights("(a (b:1.5) c)", "a1111") == [("a ", 1.1), ("b", 1.65), (" c", 1.1)]


def test_square_brackets_divide_in_a1111_and_are_text_in_comfy():
    assert weights("a [b] c", "a1111") == [("a ", 1.0), ("b", round(1 / 1.1, 6)), (" c", 1.0)]
    assert weights("a [b] c", "comfy") == [("a [b] c", 1.0)]


def test_escaped_brackets_are_literal():
    assert weights(r"a \(b\) c", "comfy") == [("a (b) c", 1.0)]
    assert weights(r"a \(b\) \[c\]", "a1111") == [("a (b) [c]", 1.0)]


def test_unbalanced_brackets_follow_each_tool():
    # ComfyUI: an unclosed "(" and everything after it is literal text; a stray ")" too
    assert weights("a (open", "comfy") == [("a ", 1.0), ("(open", 1.0)]
    assert weights("a) (b)", "comfy") == [("a) (b)", 1.0)]
    # A1111: an unclosed "(" weights the rest of the prompt; a stray ")" is literal text
    assert weights("a (open", "a1111") == [("a ", 1.0), ("open", 1.1)]
    assert weights("a) b", "a1111") == [("a) b", 1.0)]


def test_break_splits_only_on_the_whole_word():
    for style in ("comfy", "a1111"):
        segments = parse("a cat BREAK a dog", style)
        assert segments == [("a cat", 1.0), BREAK, ("a dog", 1.0)]
        assert BREAK not in parse("BREAKFAST and aBREAKb", style)
    assert parse("(a BREAK b:1.2)", "a1111") == [("a", 1.2), BREAK, ("b", 1.2)]


def test_a_comfy_weight_that_is_not_finite_is_refused():
    with pytest.raises(DiffdiffError, match="not a finite number"):
        parse("(a:nan)", "comfy")
    assert weights("(a:x)", "comfy") == [("a:x", 1.1)]  # not a number: the colon is text, as in ComfyUI


def test_lora_tags_are_taken_out_with_their_weights():
    text, tags = split_lora_tags("<lora:ink:0.7> a cat, <lora:style/pen> <lora:x:0.5:0.25>")
    assert text == " a cat,  "
    assert [(t.name, t.weight, t.text_weight) for t in tags] == [
        ("ink", 0.7, None), ("style/pen", 1.0, None), ("x", 0.5, 0.25)]
    with pytest.raises(DiffdiffError, match="bad weight 'abc'"):
        split_lora_tags("<lora:ink:abc>")


def test_unknown_style_is_refused():
    with pytest.raises(DiffdiffError, match="unknown prompt style 'nai'"):
        parse("a", "nai")
