"""Token estimates from ``treadle._core``: the binding agrees with the Rust rules, counts
large texts (with the GIL released) as it counts small ones, and frames chat messages."""

from __future__ import annotations

import threading

import pytest

from treadle._core import estimate_chat_tokens, estimate_tokens

# The table of crates/treadle-core/src/tokens.rs, through the binding.
CASES = [
    ("", 0),
    ("hello", 1),
    ("hello world, this is a test.", 8),
    ("internationalization", 4),
    ("1234567", 3),
    ("3.14159", 4),
    ("日本語", 3),
    ("привет", 3),
    ("🙂", 2),
]


@pytest.mark.parametrize(("text", "tokens"), CASES)
def test_estimates_follow_the_rules(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def test_chat_adds_framing_per_message_and_request() -> None:
    assert estimate_chat_tokens([]) == 3
    assert estimate_chat_tokens(["hello"]) == 1 + 4 + 3
    assert estimate_chat_tokens(["hi", "hello"]) == estimate_tokens("hi") + 1 + 2 * 4 + 3


def test_large_texts_count_the_same_as_their_parts() -> None:
    # Over the 64 KiB at which the GIL is released.
    part = " The quick brown fox jumps over the lazy dog, 42 times."
    text = part * 5000
    assert len(text.encode()) > 64 * 1024
    assert estimate_tokens(text) == 5000 * estimate_tokens(part)
    assert estimate_chat_tokens([text, text]) == 2 * estimate_tokens(text) + 2 * 4 + 3


def test_large_estimates_run_beside_other_threads() -> None:
    text = "lorem ipsum " * 500_000
    results: list[int] = []
    workers = [
        threading.Thread(target=lambda: results.append(estimate_tokens(text))) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # two words a repetition, and the last one's trailing space
    assert len(set(results)) == 1 and results[0] == 1_000_001


def test_prose_is_about_four_characters_a_token() -> None:
    prose = (
        "Providers count tokens with their own vocabularies, so an estimate before a call "
        "is approximate; this one errs high, because it feeds budget checks."
    )
    assert len(prose) / 6 <= estimate_tokens(prose) <= len(prose) / 3


def test_odd_input_is_counted() -> None:
    assert estimate_tokens("\x00\x7f\U0010ffff\u200bé\u0301") >= 3
    with pytest.raises(TypeError):
        estimate_tokens(b"bytes")  # type: ignore[arg-type]
