"""MLLP framing: what real senders put on the wire, decoded."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyheart.adapters.mllp.framing import (
    Discarded,
    Event,
    Frame,
    MllpDecoder,
    Oversized,
    commit_ack,
    commit_ack_value,
    encode_frame,
)

MSG1 = b"MSH|^~\\&|SND|FAC|RCV|FAC|20240101120000||ADT^A01^ADT_A01|C1|P|2.5.1\rPID|1||123^^^HOSP^MR\r"
MSG2 = b"MSH|^~\\&|SND|FAC|RCV|FAC|20240101120001||ADT^A08^ADT_A01|C2|P|2.5.1\rPID|1||456^^^HOSP^MR\r"


def frames(events: list[Event]) -> list[bytes]:
    return [e.payload for e in events if isinstance(e, Frame)]


def feed_chunks(decoder: MllpDecoder, chunks: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events


def test_one_frame_is_decoded() -> None:
    """A well-formed frame yields its payload."""
    assert frames(MllpDecoder().feed(encode_frame(MSG1))) == [MSG1]


def test_several_frames_in_one_chunk() -> None:
    """Several frames in one TCP read are all delivered, in order."""
    data = encode_frame(MSG1) + encode_frame(MSG2) + encode_frame(MSG1)
    assert frames(MllpDecoder().feed(data)) == [MSG1, MSG2, MSG1]


def test_missing_trailing_cr_ends_the_frame_at_eb() -> None:
    """A sender that ends frames with EB alone still gets each frame delivered."""
    data = b"\x0b" + MSG1 + b"\x1c" + b"\x0b" + MSG2 + b"\x1c"
    assert frames(MllpDecoder().feed(data)) == [MSG1, MSG2]


def test_frame_is_delivered_before_its_trailing_cr_arrives() -> None:
    """The frame is complete at EB: the decoder does not wait for a CR that may never come."""
    decoder = MllpDecoder()
    assert frames(decoder.feed(b"\x0b" + MSG1 + b"\x1c")) == [MSG1]


def test_trailing_cr_in_the_next_packet_is_not_junk() -> None:
    """A CR arriving in the packet after EB is swallowed, not reported as junk."""
    decoder = MllpDecoder()
    events = feed_chunks(decoder, [b"\x0b" + MSG1 + b"\x1c", b"\r\x0b" + MSG2 + b"\x1c\r"])
    assert events == [Frame(MSG1), Frame(MSG2)]


def test_junk_between_frames_is_skipped_and_counted() -> None:
    """Bytes outside frames are dropped up to the next SB and reported with their count."""
    data = encode_frame(MSG1) + b"garbage!" + encode_frame(MSG2)
    assert MllpDecoder().feed(data) == [Frame(MSG1), Discarded(8, "junk"), Frame(MSG2)]


def test_nuls_and_line_breaks_between_frames_are_not_junk() -> None:
    """NUL padding, CR/LF and blanks between frames are skipped silently."""
    data = encode_frame(MSG1) + b"\x00\x00\r\n \t" + encode_frame(MSG2)
    assert MllpDecoder().feed(data) == [Frame(MSG1), Frame(MSG2)]


def test_junk_before_the_first_frame_is_skipped() -> None:
    """Leading noise (a telnet probe, a BOM) does not hide the first frame."""
    data = b"\xef\xbb\xbfhello" + encode_frame(MSG1)
    assert MllpDecoder().feed(data) == [Discarded(8, "junk"), Frame(MSG1)]


@pytest.mark.parametrize("split", range(1, len(encode_frame(MSG1) + encode_frame(MSG2))))
def test_split_at_every_byte_boundary(split: int) -> None:
    """Two frames split into two packets at any byte give the same two frames."""
    data = encode_frame(MSG1) + encode_frame(MSG2)
    events = feed_chunks(MllpDecoder(), [data[:split], data[split:]])
    assert events == [Frame(MSG1), Frame(MSG2)]


def test_one_byte_at_a_time() -> None:
    """A sender writing one byte per packet still produces whole frames."""
    data = encode_frame(MSG1) + b"\x00" + encode_frame(MSG2)
    events = feed_chunks(MllpDecoder(), [data[i : i + 1] for i in range(len(data))])
    assert events == [Frame(MSG1), Frame(MSG2)]


@given(
    payloads=st.lists(
        st.binary(min_size=1, max_size=300).map(
            lambda b: bytes(x for x in b if x not in (0x0B, 0x1C)) or b"x"
        ),
        min_size=1,
        max_size=5,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_any_packetisation_preserves_frames(payloads: list[bytes], cuts: list[int]) -> None:
    """Whatever the payloads and however the stream is cut, the frames come out unchanged."""
    data = b"".join(encode_frame(p) for p in payloads)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert frames(feed_chunks(MllpDecoder(), chunks)) == payloads


def test_new_start_block_inside_a_frame_restarts_it() -> None:
    """An SB before EB abandons the partial frame (reported) and decodes the new one."""
    data = b"\x0b" + MSG1[:20] + encode_frame(MSG2)
    assert MllpDecoder().feed(data) == [Discarded(20, "restart"), Frame(MSG2)]


def test_oversized_frame_is_reported_not_delivered() -> None:
    """A frame above the limit becomes an Oversized event with its size and head."""
    big = MSG1 + b"OBX|1|TX|||" + b"A" * 5000 + b"\r"
    [event] = MllpDecoder(max_size=1024, head_size=64).feed(encode_frame(big))
    assert event == Oversized(big[:64], len(big))


def test_stream_resynchronises_after_an_oversized_frame() -> None:
    """The frame after an oversized one is decoded normally."""
    big = b"MSH|" + b"A" * 5000
    events = MllpDecoder(max_size=1024).feed(encode_frame(big) + encode_frame(MSG2))
    assert [type(e) for e in events] == [Oversized, Frame]
    assert frames(events) == [MSG2]


def test_oversized_frame_split_over_packets_is_not_buffered() -> None:
    """A large frame arriving in pieces is discarded as it streams, then reported once."""
    decoder = MllpDecoder(max_size=1024, head_size=16)
    chunks = [b"\x0b" + b"MSH|" + b"B" * 600] + [b"C" * 600] * 10 + [b"\x1c\r" + encode_frame(MSG1)]
    events = feed_chunks(decoder, chunks)
    assert events == [Oversized(b"MSH|" + b"B" * 12, 4 + 600 + 6000), Frame(MSG1)]


def test_oversized_frame_without_end_block_resynchronises_at_next_start_block() -> None:
    """A runaway frame with no EB ends at the next SB, which starts a good frame."""
    decoder = MllpDecoder(max_size=1024, head_size=8)
    events = feed_chunks(decoder, [b"\x0b" + b"D" * 3000, b"E" * 10 + encode_frame(MSG1)])
    assert events == [Oversized(b"D" * 8, 3010), Frame(MSG1)]


def test_frame_exactly_at_the_limit_is_accepted() -> None:
    """The limit is inclusive: a payload of exactly max_size bytes is a frame."""
    payload = b"M" * 1024
    assert frames(MllpDecoder(max_size=1024).feed(encode_frame(payload))) == [payload]


def test_close_reports_an_incomplete_frame() -> None:
    """A connection that ends inside a frame reports the partial bytes as discarded."""
    decoder = MllpDecoder()
    assert decoder.feed(b"\x0b" + MSG1[:30]) == []
    assert decoder.close() == [Discarded(30, "incomplete")]


def test_close_reports_an_oversized_frame_in_progress() -> None:
    """A connection that ends while an oversized frame streams reports it as oversized."""
    decoder = MllpDecoder(max_size=1024, head_size=4)
    decoder.feed(b"\x0b" + b"F" * 2000)
    assert decoder.close() == [Oversized(b"FFFF", 2000)]


def test_close_reports_trailing_junk() -> None:
    """Junk after the last frame is reported when the connection ends."""
    decoder = MllpDecoder()
    decoder.feed(encode_frame(MSG1) + b"xyz")
    assert decoder.close() == [Discarded(3, "junk")]


def test_in_frame_tracks_pending_bytes() -> None:
    """in_frame is True between SB and EB only."""
    decoder = MllpDecoder()
    decoder.feed(b"\x0bMSH")
    pending = decoder.in_frame
    decoder.feed(b"|\x1c\r")
    assert (pending, decoder.in_frame) == (True, False)


def test_max_size_must_be_positive() -> None:
    """A zero limit is a programming error, reported at construction."""
    with pytest.raises(ValueError, match="max_size must be positive"):
        MllpDecoder(max_size=0)


def test_mllpv2_commit_ack_frames() -> None:
    """MLLP release 2 ACK and NAK are one-byte frames 0x06 and 0x15."""
    assert (commit_ack(True), commit_ack(False)) == (b"\x0b\x06\x1c\r", b"\x0b\x15\x1c\r")


def test_mllpv2_commit_ack_values_are_recognised() -> None:
    """0x06 reads as ACK, 0x15 as NAK, anything else as not a byte ACK."""
    assert [commit_ack_value(p) for p in (b"\x06", b"\x15", MSG1)] == [True, False, None]
