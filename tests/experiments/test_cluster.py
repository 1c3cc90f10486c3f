"""Studies and evaluations on a real Ray cluster of two nodes on this machine, with an
S3-compatible object store (moto's server) on the loopback interface as the study's storage:
the records and per-image results are those of one process, a killed driver or worker loses
nothing, and a second driver on the same run folder is refused."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from saddlepoint.attacks import PGD
from saddlepoint.attacks.distribute import distributed
from saddlepoint.attacks.runtime import reproducible_plans
from saddlepoint.cli.main import main
from saddlepoint.experiments.cluster import Cluster, RayShards
from saddlepoint.experiments.studies import run_study
from saddlepoint.experiments.tasks import projected_seconds
from saddlepoint.fileio import Busy, folder_lock
from saddlepoint.runlog import RunLog

ray = pytest.importorskip("ray")
pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

BUCKET = "saddlepoint-test"
LOOPBACK = "127.0.0.1"
STUDY = {
    "study": "convergence",
    "dataset": {"name": "digits"},
    "seed": 0,
    "params": {
        "models": ["mlp", "cnn"],
        "epochs": 3,
        "images": 20,
        "eps": 0.1,
        "step": 0.01,
        "steps": 5,
        "tol": 1e-3,
    },
}


@pytest.fixture(scope="module")
def object_store(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 with one bucket; its address and test credentials in the
    environment (which the cluster's workers inherit, with a scratch folder of this test's),
    restored afterwards."""
    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "SADDLEPOINT_SCRATCH": str(tmp_path_factory.mktemp("scratch")),
    }
    before = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


@pytest.fixture(scope="module")
def cluster(object_store):
    """A head and a worker node of one CPU each, started and stopped here; this process joins
    it as a driver."""
    from ray.cluster_utils import Cluster as LocalCluster

    nodes = LocalCluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    import psutil

    own = {a.address for addresses in psutil.net_if_addrs().values() for a in addresses}
    assert nodes.address.rsplit(":", 1)[0] in own  # Ray binds one of this machine's addresses
    ray.init(address=nodes.address, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # KillsItsWorkerOnce
    yield nodes.address
    ray.shutdown()
    nodes.shutdown()


def records(folder: Path) -> dict:
    """Every section's tables, rows as recorded (the records a report is drawn from)."""
    with RunLog(folder) as log:
        return {s.key: {t.name: t.rows for t in s.tables} for s in log.sections()}


def stored(client, prefix: str) -> dict[str, tuple]:
    """Each object under ``prefix``: (ETag, LastModified)."""
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listing}


@pytest.fixture(scope="module")
def local_records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local") / "run"
    run_study(STUDY, folder, progress=False, threads=1)  # Ray tasks run on one thread each
    return records(folder)


def test_a_study_on_two_nodes_with_an_object_store_records_what_one_process_does(
    cluster, object_store, local_records, tmp_path, capsys
):
    storage = f"s3://{BUCKET}/same"
    run_study(STUDY, tmp_path / "ray", progress=False, executor="ray", storage=storage)
    assert records(tmp_path / "ray") == local_records
    objects = stored(object_store, "same/")
    assert sum("/models/" in key for key in objects) == 2  # both models, in the bucket
    assert sum("/cache/pgd_trace/" in key for key in objects) == 2
    assert not (tmp_path / "ray" / "models").exists()  # nothing of it in the run folder

    # a second driver (another run folder, the same storage) finds every task done
    run_study(STUDY, tmp_path / "again", progress=False, executor="ray", storage=storage)
    assert stored(object_store, "same/") == objects
    assert records(tmp_path / "again") == local_records

    # the seconds each task took were stored with it: the costs command reads them back
    capsys.readouterr()
    argv = ["study", "costs", str(tmp_path / "ray"), "--storage", storage, "--workers", "1", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"train_from_recipe\s+2\s", out) and re.search(r"pgd_trace\s+2\s", out)


def test_a_killed_driver_resumes_and_runs_no_finished_task_again(
    cluster, object_store, local_records, tmp_path
):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    storage = f"s3://{BUCKET}/killed"
    command = [sys.executable, "-m", "saddlepoint.cli.main", "--quiet", "study", "run"]
    command += [str(path), "--out", str(tmp_path / "run"), "--executor", "ray"]
    command += ["--address", cluster, "--storage", storage]
    driver = subprocess.Popen(command, start_new_session=True)
    deadline = time.monotonic() + 120
    while not any("/cache/" in k for k in stored(object_store, "killed/")):
        assert driver.poll() is None and time.monotonic() < deadline, "no task finished"
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and everything it started
    driver.wait()
    finished = stored(object_store, "killed/")
    assert not (tmp_path / "run" / "report.html").exists()

    # the same study again, from this process (the run folder's lock died with the driver)
    run_study(STUDY, tmp_path / "run", progress=False, executor="ray", storage=storage)
    after = stored(object_store, "killed/")
    assert {k: after[k] for k in finished} == finished  # nothing finished was made again
    assert sum("/cache/train_from_recipe/" in k for k in after) == 2
    assert sum("/cache/pgd_trace/" in k for k in after) == 2
    assert records(tmp_path / "run") == local_records


class KillsItsWorkerOnce(PGD):
    """PGD whose first call on the shard holding image 0 kills its own worker process (kill
    -9), as a node lost mid-shard; Ray runs the shard again on another worker."""

    marker: str = ""

    def _run(self, model, x, labels, targets, context):
        if context.offset == 0 and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super()._run(model, x, labels, targets, context)


def test_sharded_attacks_equal_one_process_even_when_a_worker_dies(
    cluster, trained_digits, tmp_path
):
    model, digits = trained_digits
    x, y = digits.test.images[:40], digits.test.labels[:40]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        attack = KillsItsWorkerOnce(eps=0.1, steps=5, random_start=True, seed=3)
        attack.marker = str(tmp_path / "killed")
        Path(attack.marker).write_text("")  # no kill for the local run
        with reproducible_plans():  # as every evaluation command and every shard plans
            local = attack(model, x, y)
        os.remove(attack.marker)
        with Cluster(address=cluster) as ray_cluster:
            runner = RayShards(ray_cluster, shards=3)
            with distributed(runner):
                split = attack(model, x, y)
    finally:
        torch.set_num_threads(threads)
    assert Path(attack.marker).read_text()  # a worker was killed mid-shard
    assert torch.equal(split.adversarial, local.adversarial)
    assert torch.equal(split.logits, local.logits)
    assert [run.images for run in runner.runs] == [14, 13, 13]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "digits-cnn.safetensors"
    argv = ["--quiet", "train", "--dataset", "digits", "--model", "cnn", "--epochs", "3"]
    assert main([*argv, "--out", str(path)]) == 0
    return path


def test_attack_audit_and_benchmark_on_1_2_and_3_shards_equal_one_process(
    cluster, checkpoint, tmp_path
):
    base = [str(checkpoint), "--limit", "15", "--threads", "1"]
    attack = ["--quiet", "attack", *base, "--attack", "autoattack", "--eps", "0.1"]
    attack += ["--steps", "3", "--queries", "10", "--target-classes", "2"]
    audit = ["--quiet", "audit", *base, "--eps", "0.1", "--steps", "2", "--queries", "10"]
    audit += ["--strong-steps", "2", "--strong-queries", "10"]
    card = ["--quiet", "benchmark", *base, "--eps", "0.1", "--strong-steps", "2"]
    card += ["--strong-queries", "10"]

    def outcome(extra: list[str], name: str) -> tuple:
        folder = tmp_path / name
        assert main([*attack, *extra, "--save", str(folder / "attack")]) == 0
        assert main([*audit, *extra, "--json", str(folder / "audit.json")]) == 0
        assert main([*card, *extra, "--out", str(folder / "card")]) == 0
        tensors = load_file(folder / "attack" / "adversarial.safetensors")
        checks = json.loads((folder / "audit.json").read_text())
        record = json.loads((folder / "card" / "card.json").read_text())
        card_numbers = {k: record[k] for k in ("robust_accuracy", "per_attack", "audit")}
        ran = record["ran"]
        return tensors, checks["checks"], checks["robust_accuracy"], card_numbers, ran

    one = outcome([], "local")
    assert one[-1] == {"executor": "local"}
    for shards in (1, 2, 3):
        extra = ["--executor", "ray", "--address", cluster, "--shards", str(shards)]
        split = outcome(extra, f"shards-{shards}")
        for name in ("inputs", "labels", "predictions"):  # the same images, the same outcomes
            assert torch.equal(split[0][name], one[0][name]), (shards, name)
        # the same points up to float32 rounding: CPU kernels take other paths on batches of
        # one to three images, which FAB's still-active images become in any split
        assert torch.allclose(split[0]["adversarial"], one[0]["adversarial"], rtol=0, atol=1e-6)
        assert split[1:4] == one[1:4]
        assert split[4]["executor"] == "ray" and split[4]["shards"] == shards
        assert split[4]["workers"] >= 1 and split[4]["devices"] == ["cpu"]


def test_a_second_driver_on_the_same_run_folder_is_refused(tmp_path):
    with (
        folder_lock(tmp_path / "run", "The run folder"),
        pytest.raises(Busy, match=r"in use by process \d+.*interleave"),
    ):
        run_study(STUDY, tmp_path / "run", progress=False)


def test_projected_wall_time_sends_the_longest_task_first_to_the_least_loaded_worker():
    assert projected_seconds([3, 3, 2, 2, 2], 2) == 7  # 3+2+2 against 3+2
    assert projected_seconds([5, 1, 1], 8) == 5  # the longest task bounds it
    assert projected_seconds([1.5, 2.5], 1) == 4


def test_an_unknown_storage_is_refused_naming_the_flag(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    argv = ["study", "run", str(path), "--out", str(tmp_path / "run"), "--storage", "s4://b/x"]
    assert main(argv) == 2
    assert "--storage" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_without_ray_or_s3fs_the_flags_name_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ValueError, match=r"pip install 'saddlepoint\[ray\]'"):
        run_study(STUDY, tmp_path / "a", progress=False, executor="ray")
    import fsspec  # noqa: F401 - loads fsspec.registry, whose imported classes are cached

    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if not installed
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)
    with pytest.raises(ValueError, match=r"pip install 'saddlepoint\[s3\]'"):
        run_study(STUDY, tmp_path / "b", progress=False, storage="s3://bucket/study")
