"""The cascade against a real chat-completions server on loopback with scripted (also malformed, slow) replies."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from baselines.cascade import (Cascade, ChatClient, ChatDescriber, ChatError, ChatStructurer, StructureError,
                               parse_structure)
from baselines.cli import main
from mixedparts import markup, masks


class Script:
    """Replies in order: a string (content), ("slow", seconds, content), ("status", code) or ("raw", bytes)."""

    def __init__(self):
        self.replies: list = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()


@pytest.fixture()
def server():
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                script.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                reply = script.replies.pop(0) if script.replies else ("status", 500)
            if isinstance(reply, tuple) and reply[0] == "slow":
                time.sleep(reply[1])
                reply = reply[2]
            if isinstance(reply, tuple) and reply[0] == "status":
                self.send_response(reply[1])
                self.end_headers()
                self.wfile.write(b'{"error": "scripted"}')
                return
            raw = reply[1] if isinstance(reply, tuple) else json.dumps(
                {"id": "x", "object": "chat.completion",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            try:
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield script
    httpd.shutdown()
    httpd.server_close()


H, W = 4, 6


class StandInSegmenter:
    """A known mask per name: name i of NAMES covers column i; records its calls."""

    NAMES = ["dog", "cat", "head", "leg", "tail", "wing"]

    def __init__(self, args=None):
        self.calls = []

    def segment(self, image, name):
        self.calls.append((image.info.get("index"), name))
        mask = np.zeros((image.height, image.width), bool)
        if name in self.NAMES:
            mask[:, self.NAMES.index(name)] = True
        return mask


def column(name):
    return masks.encode(StandInSegmenter().segment(picture(0), name))


def picture(index):
    image = Image.new("RGB", (W, H), (index * 40, 0, 0))
    image.info["index"] = index
    return image


def row(task):
    return {"sample_id": f"s-{task}", "task": task, "question": "Which parts differ in these images?",
            "images": [{"height": H, "width": W}, {"height": H, "width": W}]}


def structure(**overrides):
    base = {"common_object": None, "objects": ["dog", "cat"], "common_parts": ["head"],
            "unique_parts": [["tail"], ["wing", "the Wing"]]}
    return json.dumps({**base, **overrides})


def cascade(script, segmenter, timeout=5.0, structure_retries=2):
    describer = ChatDescriber(ChatClient(script.url, "sparkles", None, timeout, retries=1, backoff=0.01))
    structurer = ChatStructurer(ChatClient(script.url, "gpt-4o", "sk-test", timeout, retries=1, backoff=0.01),
                                structure_retries)
    return Cascade(describer, structurer, segmenter)


def test_malformed_then_valid_structure_gives_exact_unique_parts(server):
    server.replies = ["A dog with a tail, and a cat with wings.", "Sure! Here it is: {oops",
                      structure(unique_parts=[["tail"]]),  # wrong length
                      "```json\n" + structure() + "\n```"]
    segmenter = StandInSegmenter()
    prediction = cascade(server, segmenter).predict(row("unique_parts"), [picture(0), picture(1)])
    got = [(s["label"], s["image_index"], s["mask"]) for s in prediction["segments"]]
    assert got == [("dog", 0, column("dog")), ("cat", 1, column("cat")), ("tail", 0, column("tail")),
                   ("wing", 1, column("wing"))]
    assert markup.seg_image_indices(prediction["text"]) == [0, 1, 0, 1]
    assert segmenter.calls == [(0, "dog"), (1, "cat"), (0, "tail"), (1, "wing")]
    describe, *asks = server.requests
    assert describe["path"] == "/v1/chat/completions" and describe["body"]["model"] == "sparkles"
    content = describe["body"]["messages"][0]["content"]
    assert [c["text"] for c in content if c["type"] == "text"][:2] == ["IMAGE#1", "IMAGE#2"]
    assert all(c["image_url"]["url"].startswith("data:image/png;base64,") for c in content if c["type"] == "image_url")
    assert len(asks) == 3 and all(a["auth"] == "Bearer sk-test" for a in asks)
    assert asks[0]["body"]["response_format"] == {"type": "json_object"}
    assert "A dog with a tail" in asks[0]["body"]["messages"][0]["content"]
    assert "not valid JSON" in asks[1]["body"]["messages"][-1]["content"]
    assert "unique_parts must be a list of 2 lists" in asks[2]["body"]["messages"][-1]["content"]


def test_slow_reply_times_out_and_is_retried(server):
    server.replies = [("slow", 1.5, "too late"), "Both show a dog.", structure(common_object="a Dog")]
    started = time.perf_counter()
    prediction = cascade(server, StandInSegmenter(), timeout=0.5).predict(row("common_object"),
                                                                          [picture(0), picture(1)])
    assert time.perf_counter() - started < 5
    assert [(s["label"], s["image_index"]) for s in prediction["segments"]] == [("dog", 0), ("dog", 1)]
    assert prediction["text"] == "The common object is <p> a dog </p> [SEG] (IMAGE1) [SEG] (IMAGE2)."


def test_common_parts_and_server_errors(server):
    server.replies = [("status", 503), "They share heads.", structure()]
    prediction = cascade(server, StandInSegmenter()).predict(row("common_parts"), [picture(0), picture(1)])
    assert [(s["label"], s["image_index"]) for s in prediction["segments"]] == [
        ("dog", 0), ("cat", 1), ("head", 0), ("head", 1)]
    ask = [{"role": "user", "content": "x"}]
    server.requests.clear()
    server.replies = [("status", 429), "fine"]
    assert ChatClient(server.url, "m", timeout=2, retries=1, backoff=0.01).complete(ask) == "fine"
    server.replies = [("status", 500), ("status", 502)]
    with pytest.raises(ChatError, match="gave up after 2 tries: HTTP 502"):
        ChatClient(server.url, "m", timeout=2, retries=1, backoff=0.01).complete(ask)
    assert len(server.requests) == 4
    # Neither a refusal nor a reply that is not a chat completion is asked again.
    for reply, problem in ((("status", 400), "HTTP 400"), (("raw", b"not json at all"), "unreadable reply"),
                           (("raw", b'{"choices": []}'), r"reply without choices\[0\]")):
        server.requests.clear()
        server.replies = [reply]
        with pytest.raises(ChatError, match=problem):
            ChatClient(server.url, "m", timeout=2, retries=3, backoff=0.01).complete(ask)
        assert len(server.requests) == 1


def test_an_unreachable_endpoint_gives_up_with_the_reason():
    from leaderboard_helpers import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ChatError, match=r"gave up after 2 tries: cannot connect"):
        ChatClient(dead, "m", timeout=2, retries=1, backoff=0.01).complete([{"role": "user", "content": "x"}])


def test_structure_stays_malformed(server):
    server.replies = ["text", "[]", '{"objects": []}']
    with pytest.raises(StructureError, match="missing keys"):
        cascade(server, StandInSegmenter(), structure_retries=1).predict(row("common_parts"), [picture(0), picture(1)])


def test_parse_structure_normalizes_names():
    parsed = parse_structure(structure(common_parts=["The Head", "head"]), 2)
    assert parsed.common_parts == ["head"] and parsed.unique_parts == [["tail"], ["wing"]]
    with pytest.raises(ValueError, match="objects must be a list of 3"):
        parse_structure(structure(), 3)


def stand_in_factory(args):
    return StandInSegmenter(args)


def test_cascade_cli_on_a_built_dataset_writes_scorable_predictions(build_tiny, server, tmp_path, monkeypatch):
    """Via mixedparts-baseline: one scripted exchange per sample, the last sample's structure never valid."""
    from mixedparts.build.options import BuildOptions
    from mixedparts.predictions import read_predictions

    build_tiny(tmp_path / "dataset", BuildOptions(max_samples_per_split=3))
    server.replies = ["desc", structure(), "desc", structure(), "desc", "bad", "bad"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-stay-home")
    monkeypatch.setenv("TEST_KEY", "sk-cli")
    out = tmp_path / "cascade.json"
    assert main(["cascade", "--data", str(tmp_path / "dataset"), "--out", str(out), "--describer-url", server.url,
                 "--structurer-url", server.url, "--structurer-key-env", "TEST_KEY", "--timeout", "5", "--retries",
                 "0", "--structure-retries", "1", "--max-failed-share", "0.5",
                 "--segmenter", f"{__name__}:stand_in_factory"]) == 0
    predictions = read_predictions(out)
    assert len(predictions.by_sample) == 3 and not predictions.mismatched
    assert list(predictions.by_sample.values())[-1]["segments"] == []
    describes = [r for r in server.requests if r["body"]["model"] == "sparkleschat"]
    structures = [r for r in server.requests if r["body"]["model"] == "gpt-4o"]
    assert len(describes) == 3 and len(structures) == 4
    assert all(r["auth"] is None for r in describes)  # the describer never sees the structurer's key
    assert all(r["auth"] == "Bearer sk-cli" for r in structures)
    from mixedparts.metrics.cli import main as eval_main

    assert eval_main([str(out), "--data", str(tmp_path / "dataset"), "--split", "test"]) == 0


def test_each_endpoint_gets_only_its_own_key(build_tiny, server, tmp_path, monkeypatch):
    from mixedparts.build.options import BuildOptions

    build_tiny(tmp_path / "dataset", BuildOptions(max_samples_per_split=1))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("SPARKLES_KEY", "sk-sparkles")
    server.replies = ["desc", structure()]
    args = ["cascade", "--data", str(tmp_path / "dataset"), "--out", str(tmp_path / "c.json"), "--describer-url",
            server.url, "--structurer-url", server.url, "--timeout", "5", "--retries", "0",
            "--segmenter", f"{__name__}:stand_in_factory"]
    assert main([*args, "--describer-key-env", "SPARKLES_KEY"]) == 0
    assert [(r["body"]["model"], r["auth"]) for r in server.requests] == [("sparkleschat", "Bearer sk-sparkles"),
                                                                          ("gpt-4o", "Bearer sk-openai")]
    monkeypatch.delenv("SPARKLES_KEY")
    server.requests.clear()
    assert main([*args, "--describer-key-env", "SPARKLES_KEY"]) == 2  # a named key that is missing: no request
    assert server.requests == []


def test_an_unreachable_endpoint_stops_the_run_and_fails(build_tiny, tmp_path, capsys):
    """Nothing listens on the port: the run stops after N samples in a row, exits 2, and keeps its predictions."""
    from mixedparts.build.options import BuildOptions
    from mixedparts.predictions import read_predictions

    build_tiny(tmp_path / "dataset", BuildOptions(max_samples_per_split=12))
    from leaderboard_helpers import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "cascade.json"
    assert main(["cascade", "--data", str(tmp_path / "dataset"), "--out", str(out), "--describer-url", dead,
                 "--structurer-url", dead, "--structurer-key-env", "", "--timeout", "2", "--retries", "0",
                 "--max-consecutive-failures", "3", "--segmenter", f"{__name__}:stand_in_factory"]) == 2
    err = capsys.readouterr().err
    assert "stopped after 3 samples in a row whose chat endpoint failed" in err
    assert len(read_predictions(out).by_sample) == 3


class Scripted:
    """A cascade stand-in: raises the scripted error for a sample, or answers with an empty prediction."""

    def __init__(self, errors):
        self.errors = errors

    def predict(self, row, images):
        from baselines.common import compose

        error = self.errors.get(row["sample_id"])
        if error is not None:
            raise error
        return compose(row["sample_id"], row["task"], [], [])


class NoImages:
    def open_all(self, row):
        return []


def test_failed_share_over_the_limit_fails_and_malformed_answers_do_not_count_as_endpoint_failures():
    from baselines.cascade import TooManyFailures, run_cascade

    rows = [{"sample_id": f"s{i}", "task": "common_parts"} for i in range(10)]
    malformed = {f"s{i}": StructureError("malformed") for i in range(6)}
    with pytest.raises(TooManyFailures, match="6 of 10 samples") as failure:  # 6 in a row, but not endpoint ones
        run_cascade(Scripted(malformed), rows, NoImages(), max_consecutive_failures=2, max_failed_share=0.5)
    assert len(failure.value.predictions) == 10
    assert len(run_cascade(Scripted(malformed), rows, NoImages(), 2, max_failed_share=0.6)) == 10
    alternating = {f"s{i}": ChatError("down") for i in range(0, 10, 2)}
    assert len(run_cascade(Scripted(alternating), rows, NoImages(), 2, max_failed_share=0.5)) == 10
    in_a_row = {"s3": ChatError("down"), "s4": ChatError("down")}
    with pytest.raises(TooManyFailures, match=r"stopped after 2 samples in a row .*\(5 of 10"):
        run_cascade(Scripted(in_a_row), rows, NoImages(), 2, max_failed_share=1.0)
