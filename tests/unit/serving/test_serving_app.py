"""The Flask app through its test client, with the fake task: statuses, JSON errors, batching, resilience."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from smcv.serving.app import create_app


def post(client, data, content_type="image/png", **headers):
    return client.post("/invocations", data=data, headers={"Content-Type": content_type, **headers})


def assert_json_error(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status"] == status and body["error"]
    return body


@pytest.fixture
def client(make_holder):
    return create_app(make_holder()).test_client()


def test_ping_503_before_load_then_200(make_holder):
    holder = make_holder(load=False)
    client = create_app(holder).test_client()
    assert_json_error(client.get("/ping"), 503)
    assert_json_error(post(client, b"x"), 503)
    holder.start().wait(timeout=120)
    response = client.get("/ping")
    assert response.status_code == 200 and response.data == b""


def test_ping_500_names_the_load_failure(make_holder):
    holder = make_holder(manifest={"fail": "broken weights"})
    client = create_app(holder).test_client()
    body = assert_json_error(client.get("/ping"), 500)
    assert "broken weights" in body["error"]
    assert "broken weights" in assert_json_error(post(client, b"x"), 500)["error"]


def test_ping_500_for_missing_model(fake_task, tmp_path):
    from smcv.serving.model_holder import ModelHolder

    holder = ModelHolder(tmp_path / "nowhere", device="cpu")
    holder.load()
    assert "manifest.json" in assert_json_error(create_app(holder).test_client().get("/ping"), 500)["error"]


def test_invocation_default_json(client, fake_task):
    response = post(client, fake_task.image_bytes((255, 0, 255)))
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json()["mean"] == pytest.approx([1.0, 0.0, 1.0])


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "application/x-image",
                                          "application/octet-stream", "image/png; charset=binary"])
def test_every_request_type(client, fake_task, content_type):
    response = post(client, fake_task.image_bytes(fmt="JPEG" if "jpeg" in content_type else "PNG"), content_type)
    assert response.status_code == 200


def test_accept_selects_encoding_and_annotation(client, fake_task):
    data = fake_task.image_bytes(size=(7, 5))
    csv = post(client, data, Accept="text/csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv" and csv.data.count(b",") == 2
    plain = post(client, data, Accept="application/json")
    assert "annotation" not in plain.get_json()
    annotated = post(client, data, Accept="application/json;annotation=1")
    assert annotated.status_code == 200
    assert annotated.headers["Content-Type"] == "application/json;annotation=1"
    assert json.loads(annotated.data)["annotation"] == {"width": 7, "height": 5}


def test_custom_attributes_reach_encode(client, fake_task):
    response = post(client, fake_task.image_bytes(), **{"X-Amzn-SageMaker-Custom-Attributes": "top_k=3"})
    assert response.get_json()["custom_attributes"] == "top_k=3"


def test_client_errors_are_json_and_the_app_keeps_serving(client, fake_task):
    assert "supported" in assert_json_error(post(client, b"a,b", "text/csv"), 415)
    assert "text/csv" in assert_json_error(post(client, fake_task.image_bytes(), Accept="image/png"), 406)["supported"]
    assert "empty" in assert_json_error(post(client, b""), 400)["error"]
    assert_json_error(post(client, b"garbage bytes", "application/octet-stream"), 400)
    assert_json_error(post(client, b"\x89PNG\r\n\x1a\ntruncated"), 400)
    assert_json_error(client.get("/nothing-here"), 404)
    assert_json_error(client.get("/invocations"), 405)
    assert post(client, fake_task.image_bytes()).status_code == 200


def test_payload_limit_413(fake_task, make_holder, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", "1")
    client = create_app(make_holder()).test_client()
    body = assert_json_error(post(client, b"\xff\xd8\xff" + b"0" * (1024 * 1024)), 413)
    assert body["max_payload_mb"] == 1
    assert post(client, fake_task.image_bytes()).status_code == 200


def test_payload_limit_caps_the_read_when_length_is_understated(make_holder):
    client = create_app(make_holder(), payload_mb=1).test_client()
    body = b"\xff\xd8\xff" + b"0" * (2 * 1024 * 1024)
    response = client.post("/invocations", data=body, headers={"Content-Type": "image/jpeg"},
                           environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True})
    assert_json_error(response, 413)


def test_prediction_failure_is_500_and_later_requests_succeed(client, fake_task):
    body = assert_json_error(post(client, fake_task.image_bytes((255, 0, 0))), 500)
    assert "RuntimeError" in body["error"]
    assert post(client, fake_task.image_bytes()).status_code == 200


def test_unexpected_exception_in_encode_is_500(make_holder, fake_task, monkeypatch):
    holder = make_holder()
    monkeypatch.setattr(holder.predictor, "encode", lambda *a: 1 / 0)
    client = create_app(holder).test_client()
    assert "ZeroDivisionError" in assert_json_error(post(client, fake_task.image_bytes()), 500)["error"]


def test_timeout_is_503(make_holder, fake_task):
    holder = make_holder(manifest={"delay_s": 0.5}, timeout_s=0.05, max_delay_ms=0)
    client = create_app(holder).test_client()
    assert "timeout_s" in assert_json_error(post(client, fake_task.image_bytes()), 503)


def test_concurrent_requests_are_batched(make_holder, fake_task):
    holder = make_holder(max_batch_size=8, max_delay_ms=300)
    app = create_app(holder)
    holder.predictor.batch_sizes.clear()
    results: list[int] = []
    start = threading.Barrier(6)

    def one(shade: int) -> None:
        client = app.test_client()
        start.wait()
        response = post(client, fake_task.image_bytes((shade, shade, shade)))
        results.append(response.status_code)

    threads = [threading.Thread(target=one, args=(40 * i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 6
    assert max(holder.predictor.batch_sizes) > 1


def test_execution_parameters(make_holder):
    body = create_app(make_holder(max_batch_size=4), workers=2, payload_mb=6).test_client().get("/execution-parameters").get_json()
    assert body == {"MaxConcurrentTransforms": 8, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 6}
    capped = create_app(make_holder(max_batch_size=8), workers=4, payload_mb=20).test_client().get("/execution-parameters")
    assert capped.get_json()["MaxConcurrentTransforms"] == 5  # 5 x 20 MB stays within SageMaker's 100 MB


def test_one_readiness_check_and_one_negotiation_per_request(make_holder, fake_task, monkeypatch):
    from smcv.serving import codecs

    holder = make_holder()
    calls = {"ready": 0, "negotiate": 0}
    check_ready, negotiate = holder.check_ready, codecs.negotiate

    def counted_check_ready():
        calls["ready"] += 1
        return check_ready()

    def counted_negotiate(*args, **kwargs):
        calls["negotiate"] += 1
        return negotiate(*args, **kwargs)

    monkeypatch.setattr(holder, "check_ready", counted_check_ready)
    monkeypatch.setattr(codecs, "negotiate", counted_negotiate)
    response = post(create_app(holder).test_client(), fake_task.image_bytes(), Accept="text/csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert calls == {"ready": 1, "negotiate": 1}
def test_repeated_5xx_logged_once_per_state_change(make_holder, fake_task, caplog):
    holder = make_holder(load=False)
    client = create_app(holder).test_client()
    with caplog.at_level(logging.INFO, logger="smcv.serving"):
        for _ in range(50):
            assert_json_error(post(client, fake_task.image_bytes()), 503)
        holder.start().wait(timeout=120)
        assert post(client, fake_task.image_bytes()).status_code == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "-> 503" in r.getMessage()]
    assert len(warnings) == 1
    assert any("serving again after 49 further 503 answer(s) to /invocations" in r.getMessage() for r in caplog.records)


def test_concurrency_slots_bound_requests_in_flight(make_holder, fake_task):
    holder = make_holder(manifest={"delay_s": 0.3})
    client = create_app(holder, concurrency=1).test_client()
    warm_up = len(holder.predictor.batch_sizes)
    results = []
    threads = [threading.Thread(target=lambda: results.append(post(client, fake_task.image_bytes()).status_code))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200, 200, 200]
    assert holder.predictor.batch_sizes[warm_up:] == [1, 1, 1]  # one slot: never two requests in one batch


def test_ping_refuses_a_model_saved_before_its_first_epoch_unless_allowed(make_holder, monkeypatch):
    monkeypatch.delenv("SMCV_ALLOW_UNTRAINED", raising=False)
    untrained = {"trained": False, "epochs_completed": 0}
    response = create_app(make_holder(manifest=untrained)).test_client().get("/ping")
    assert response.status_code == 500
    assert "stopped before its first epoch" in response.get_json()["error"]
    assert "SMCV_ALLOW_UNTRAINED=1" in response.get_json()["error"]
    monkeypatch.setenv("SMCV_ALLOW_UNTRAINED", "1")
    assert create_app(make_holder(manifest=untrained)).test_client().get("/ping").status_code == 200
