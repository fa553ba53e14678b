"""One connection's ordering of stream messages (the reorder window) and its book coalescing."""

from marketdata.delivery import BookCoalescer, Reorder


def _message(seq: int, **data) -> dict:
    return {"stream": "trades.BTCUSDT", "seq": seq, "ts": 0, "data": data}


def _seqs(messages: list[dict]) -> list[int]:
    return [message["seq"] for message in messages]


def test_a_message_ahead_waits_for_the_missing_one_then_both_go_in_order():
    reorder = Reorder(window_seconds=1, window_messages=64)
    reorder.start("k", 10, now=0)
    assert reorder.accept("k", _message(12), now=0.0) == []
    assert reorder.next_due() == 1.0
    assert _seqs(reorder.accept("k", _message(11), now=0.2)) == [11, 12]
    assert reorder.next_due() is None


def test_when_the_window_runs_out_what_is_held_goes_out_and_the_gap_shows():
    reorder = Reorder(window_seconds=1, window_messages=64)
    reorder.start("k", 10, now=0)
    reorder.accept("k", _message(13), now=0.0)
    reorder.accept("k", _message(14), now=0.5)
    assert reorder.due(now=0.9) == []
    assert _seqs(reorder.due(now=1.0)) == [13, 14]
    assert _seqs(reorder.accept("k", _message(15), now=1.1)) == [15]
    assert reorder.accept("k", _message(12), now=1.2) == []  # too late: the client resyncs from REST


def test_a_full_window_releases_at_once_and_old_or_repeated_messages_are_dropped():
    reorder = Reorder(window_seconds=60, window_messages=3)
    reorder.start("k", 0, now=0)
    assert reorder.accept("k", _message(0), now=0) == []
    assert _seqs(reorder.accept("k", _message(1), now=0)) == [1]
    assert reorder.accept("k", _message(1), now=0) == []
    reorder.accept("k", _message(3), now=0)
    reorder.accept("k", _message(4), now=0)
    assert _seqs(reorder.accept("k", _message(6), now=0)) == [3, 4]
    assert reorder.next_due() == 60  # 6 still waits for 5


def test_a_stream_nobody_follows_is_not_delivered_and_a_started_stream_keeps_its_place():
    reorder = Reorder(window_seconds=1, window_messages=64)
    assert reorder.accept("other", _message(1), now=0) == []
    reorder.start("k", 5, now=0)
    reorder.expect("k")
    assert reorder.start("k", 1, now=0) == []
    assert reorder.accept("k", _message(2), now=0) == []
    reorder.keep_only(set())
    assert reorder.accept("k", _message(6), now=0) == []


def test_messages_that_arrive_before_the_start_is_read_are_held_and_those_after_it_follow_in_order():
    reorder = Reorder(window_seconds=1, window_messages=64)
    reorder.expect("k")
    for seq in (12, 10, 11):  # committed while the subscription read its starting point (10)
        assert reorder.accept("k", _message(seq), now=0) == []
    assert reorder.next_due() is None  # waiting for the start is not a gap
    assert _seqs(reorder.start("k", 10, now=0.5)) == [11, 12]
    assert _seqs(reorder.accept("k", _message(13), now=0.6)) == [13]


def test_a_line_whose_start_never_comes_holds_a_bounded_number_of_the_newest_messages():
    reorder = Reorder(window_seconds=1, window_messages=2)
    reorder.expect("k")
    for seq in range(1, 101):
        reorder.accept("k", _message(seq), now=0)
    assert _seqs(reorder.start("k", 0, now=1)) == []  # 1 … 68 were let go: the client sees the gap
    assert _seqs(reorder.due(now=2)) == list(range(69, 101))


def test_a_gap_among_the_messages_held_before_the_start_opens_a_window():
    reorder = Reorder(window_seconds=1, window_messages=64)
    reorder.expect("k")
    reorder.accept("k", _message(13), now=0)
    reorder.accept("k", _message(11), now=0)
    assert _seqs(reorder.start("k", 10, now=0.5)) == [11]
    assert reorder.next_due() == 1.5  # 13 waits a window for 12
    assert _seqs(reorder.due(now=1.5)) == [13]


def test_coalesced_book_diffs_keep_each_levels_last_size_and_their_seq_range():
    coalescer = BookCoalescer()
    assert coalescer.take("book.X@100ms", ts=1) is None
    coalescer.add({"seq": 7, "data": {"bids": [["99", "1"]], "asks": [["101", "2"]]}})
    coalescer.add({"seq": 8, "data": {"bids": [["100", "3"], ["99", "0"]], "asks": []}})
    merged = coalescer.take("book.X@100ms", ts=1)
    assert (merged["first_seq"], merged["seq"]) == (7, 8)
    assert merged["data"] == {"snapshot": False, "bids": [["100", "3"], ["99", "0"]], "asks": [["101", "2"]]}
    assert coalescer.take("book.X@100ms", ts=2) is None
