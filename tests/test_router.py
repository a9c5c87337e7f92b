"""The prompt router: the shipped artifact at its targets, a tiny retrain, /classify and the
chat routing a picture request (real MiniLM, real server)."""

import json

import httpx
import pytest

from omnicoach.artifacts import read_manifest
from omnicoach.errors import InvalidRequestError, ModelFileError
from omnicoach.models.bundled import minilm_dir
from omnicoach.models.prompt_router import LABELS, PromptRouter
from omnicoach.models.romanise import romanise_bengali
from omnicoach.training.router import RouterTraining, load_examples, train_router
from tests.conftest import REPO
from tests.server_process import ServerProcess

DATA = REPO / "data" / "router"


@pytest.fixture(scope="module")
def shipped(registry):
    return registry.router()


def test_the_shipped_router_meets_its_targets_on_the_held_out_test_split(shipped):
    test = load_examples(DATA / "test.jsonl")
    routes = shipped.classify_many([e.prompt for e in test])
    predicted = [r.label for r in routes]
    correct = sum(p == e.label for p, e in zip(predicted, test, strict=True))
    accuracy = correct / len(test)
    f1 = []
    for label in LABELS:
        tp = sum(p == label == e.label for p, e in zip(predicted, test, strict=True))
        fp = sum(p == label != e.label for p, e in zip(predicted, test, strict=True))
        fn = sum(e.label == label != p for p, e in zip(predicted, test, strict=True))
        f1.append(2 * tp / (2 * tp + fp + fn))
    assert len(test) >= 240 and {e.lang for e in test} == {"en", "bn"}
    assert accuracy >= 0.97, f"test accuracy {accuracy:.4f}"
    assert sum(f1) / len(f1) >= 0.97, f"macro-F1 {sum(f1) / len(f1):.4f}"
    # The manifest's figures are the ones this artifact gives.
    assert shipped.manifest["metrics"]["accuracy"] == pytest.approx(accuracy, abs=1 / len(test))
    assert shipped.manifest["evaluated_on"] == "test"
    for route in routes:
        assert 0.5 <= route.confidence <= 1 and set(route.scores) == set(LABELS)
        assert sum(route.scores.values()) == pytest.approx(1, abs=1e-5)


def test_the_router_reads_requests_and_negations(shipped):
    assert shipped.classify("generate an image of a warrior II pose").label == "image_generation"
    assert shipped.classify("how do I do warrior II safely?").label == "conversation"
    assert shipped.classify("don't draw it, just explain cobra pose").label == "conversation"


def test_a_changed_artifact_file_is_refused_with_the_rebuild_command(tmp_path):
    import shutil

    copy = tmp_path / "router"
    shutil.copytree(REPO / "artifacts" / "router", copy)
    with open(copy / "head.safetensors", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelFileError, match="omnicoach train router"):
        PromptRouter(copy, minilm_dir())


def test_bengali_is_romanised_as_people_type_it():
    assert romanise_bengali("একটা ছবি আঁকো") == "ekta chobi ako"
    assert romanise_bengali("plain English stays") == "plain English stays"


def test_bad_training_data_names_its_file_and_line(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "draw a cat", "label": "image_generation"}\n{"prompt": "hi"}\n')
    with pytest.raises(InvalidRequestError, match="train.jsonl:2"):
        load_examples(data)
    data.write_text('{"prompt": "draw a cat", "label": "picture"}\n')
    with pytest.raises(InvalidRequestError, match="label 'picture' is not one of"):
        load_examples(data)


def test_a_tiny_retrain_learns_and_writes_a_loadable_artifact(tmp_path):
    rows = [json.loads(line) for line in (DATA / "train.jsonl").read_text().splitlines()]
    by_label = {label: [r for r in rows if r["label"] == label][:48] for label in LABELS}
    small = tmp_path / "data" / "train.jsonl"
    small.parent.mkdir()
    small.write_text(
        "".join(json.dumps(r) + "\n" for pair in zip(*by_label.values(), strict=True) for r in pair)
    )
    losses = []
    config = RouterTraining(
        data=small,
        out=tmp_path / "router",
        base_encoder=minilm_dir(),
        epochs=2,
        batch_size=16,
        command="test",
    )
    manifest = train_router(
        config, on_step=lambda step, total, loss: losses.append(loss), log=print
    )
    assert len(losses) == 12  # 86 training rows (a tenth held out) in batches of 16, 2 epochs
    assert sum(losses[-3:]) < sum(losses[:3]), losses
    assert manifest["evaluated_on"] == "validation"  # no test split beside this data
    assert set(manifest["comparison"]) >= {
        "zero-shot (MiniLM similarity)",
        "logistic regression (MiniLM embeddings)",
    }
    assert read_manifest(tmp_path / "router")["files"].keys() >= {
        "adapter_model.safetensors",
        "head.safetensors",
        "router.json",
    }
    router = PromptRouter(tmp_path / "router", minilm_dir())
    assert router.classify("draw a picture of a cat").label in LABELS


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("router")
    # No image generator installed here: a picture request is answered that drawing is not.
    with ServerProcess(directory / "server.log", image_model=directory / "none") as process:
        yield process


def test_classify_answers_label_confidence_and_scores(server):
    response = httpx.post(f"{server.url}/classify", json={"prompt": "draw a cobra pose"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == "image_generation" and 0.5 <= body["confidence"] <= 1
    assert set(body["scores"]) == set(LABELS) and body["threshold"] == 0.5


@pytest.mark.parametrize(
    ("prompt", "code"),
    [("", "empty_prompt"), ("   ", "empty_prompt"), ("x" * 8001, "prompt_too_long")],
)
def test_an_empty_or_over_long_prompt_is_a_400(server, prompt, code):
    response = httpx.post(f"{server.url}/classify", json={"prompt": prompt})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["param"] == "prompt"


def test_chat_routes_a_picture_request_and_stores_the_plain_reply(server):
    conversation = httpx.post(f"{server.url}/conversations", json={}).json()
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={
            "model": "smollm2-135m-instruct",
            "messages": [{"role": "user", "content": "please draw a warrior II pose for me"}],
            "conversation_id": conversation["id"],
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["route"]["label"] == "image_generation"
    assert "image generation is not installed" in body["choices"][0]["message"]["content"]
    stored = httpx.get(f"{server.url}/conversations/{conversation['id']}/messages").json()["data"]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["content"] == body["choices"][0]["message"]["content"]
    # Asked directly, the missing generator is an error that says how to build one.
    drawn = httpx.post(f"{server.url}/generate", json={"prompt": "tree pose"}, timeout=60)
    assert drawn.status_code == 500
    assert "omnicoach train imagegen" in drawn.json()["error"]["message"]


def test_chat_answers_a_question_with_the_model(server):
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={
            "model": "smollm2-135m-instruct",
            "messages": [{"role": "user", "content": "What muscles does a squat work?"}],
            "max_tokens": 8,
            "stream": True,
        },
        timeout=60,
    )
    assert response.status_code == 200
    events = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]
    assert events[0]["route"]["label"] == "conversation"
    assert events[0]["model"] == "smollm2-135m-instruct"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
