"""Data parallel: the rank-aware training sampler, and 2 CPU processes (gloo, `paddle.distributed.launch`) against
one process at twice the batch (`tools/check_data_parallel.py` on the tiny config). Run with `-s` for the figures."""

import importlib.util
import os

import numpy as np
import pytest

import fastformer  # noqa: F401  (before paddle)
from fastformer.training.sampler import EpochBatchSampler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LABELS = np.repeat(np.arange(5), [70, 50, 80, 200, 600])  # Amazon-like imbalance, 1000 examples


def _rank_epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


# ------------------------------------------------------------------------------------------------------ sampler
@pytest.mark.parametrize("balanced", [True, False])
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_take_their_slice_of_every_one_process_batch(balanced, grouped, drop_last):
    lengths = np.random.default_rng(0).integers(5, 300, size=len(LABELS)) if grouped else None
    kwargs = dict(seed=7, balanced=balanced, drop_last=drop_last, lengths=lengths, group_size=5)
    for world, per_device in ((2, 16), (3, 16), (4, 7)):
        one = EpochBatchSampler(LABELS, batch_size=world * per_device, **kwargs)
        ranks = [EpochBatchSampler(LABELS, batch_size=per_device, num_replicas=world, rank=r, **kwargs)
                 for r in range(world)]
        for epoch in (0, 3):
            global_batches = one.epoch_batches(epoch)
            per_rank = [_rank_epoch(s, epoch) for s in ranks]
            assert [len(b) for b in per_rank] == [len(s) for s in ranks] == [len(global_batches)] * world
            for step, batch in enumerate(global_batches):
                parts = [b[step] for b in per_rank]
                assert sum(parts, []) == batch  # rank r holds the r-th slice: together, the one-process batch
                sizes = [len(p) for p in parts]
                assert sizes == [per_device] * world if len(batch) == world * per_device else \
                    (not drop_last and max(sizes) - min(sizes) <= 1 and min(sizes) >= 1)
            # resuming builds a new sampler: the same batches
            again = EpochBatchSampler(LABELS, batch_size=per_device, num_replicas=world, rank=world - 1, **kwargs)
            assert _rank_epoch(again, epoch) == per_rank[-1]


def test_unbalanced_epoch_is_cut_into_disjoint_shards_covering_every_example():
    ranks = [EpochBatchSampler(LABELS, batch_size=16, seed=1, balanced=False, num_replicas=3, rank=r) for r in range(3)]
    shards = [[i for batch in _rank_epoch(s, 2) for i in batch] for s in ranks]
    assert sum(len(s) for s in shards) == len(LABELS)
    assert set().union(*shards) == set(range(len(LABELS)))  # so pairwise disjoint as well


def test_remainder_smaller_than_the_number_of_ranks_is_dropped():
    # 65 examples, 2 ranks x 32: one full global batch and a remainder of 1, which cannot feed both ranks
    labels = np.arange(65) % 5
    ranks = [EpochBatchSampler(labels, batch_size=32, balanced=False, num_replicas=2, rank=r) for r in range(2)]
    assert [len(s) for s in ranks] == [1, 1] and [len(_rank_epoch(s, 0)) for s in ranks] == [1, 1]
    labels = np.arange(66) % 5  # a remainder of 2: one each
    ranks = [EpochBatchSampler(labels, batch_size=32, balanced=False, num_replicas=2, rank=r) for r in range(2)]
    assert [[len(b) for b in _rank_epoch(s, 0)] for s in ranks] == [[32, 1], [32, 1]]
    with pytest.raises(ValueError, match="rank 2 is not one of 2 replicas"):
        EpochBatchSampler(labels, batch_size=32, num_replicas=2, rank=2)


# -------------------------------------------------------------------------------------------- two processes
def _tool():
    spec = importlib.util.spec_from_file_location("check_data_parallel",
                                                  os.path.join(ROOT, "tools", "check_data_parallel.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    # Paddle's own kernels in the children (no compiled-kernel build inside the timed runs); dropout off. The model
    # kept is the mean of the checkpoints (--average_checkpoints): the first process averages, every process uses it.
    result = _tool().run_check(processes=2, per_device=32, work_dir=str(tmp_path_factory.mktemp("dp")),
                               train_args=["--average_checkpoints", "true"], timeout=600,
                               env={"FASTFORMER_CPU_OPS": "0"})
    print("\n[data parallel] steps", result["steps"], "| weights", result["weights"]["model"],
          "| dev logits", result["dev_logits_max_abs_diff"], "| timing", result["timing"])
    return result


def test_two_processes_train_on_the_one_process_batches_cut_in_two(report):
    assert len(report["batches"]) == 2  # epochs
    for epoch in report["batches"].values():
        assert epoch["batches_are_slices_of_one_process"] and epoch["union_is_one_process_epoch"]
        assert epoch["shared_indices_drawn_once_by_one_process"] == 0
        assert epoch["rank_steps"] == [5, 5] and epoch["rank_batch_sizes"] == [[22, 32], [22, 32]]  # 300 = 4x64 + 44


def test_two_processes_take_half_the_steps_and_end_with_the_one_process_weights(report):
    steps = report["steps"]
    assert steps["processes_at_per_device_batch"] == [10, 10] == [steps["one_process_at_global_batch"]] * 2
    assert steps["one_process_at_per_device_batch"] == 20
    assert report["train_samples_seen"] == {"one_process": 600, "processes": [600, 600]}
    for name in ("checkpoint-5", "checkpoint-10", "model"):
        assert report["weights"][name]["max_abs_diff"] <= 1e-5, report["weights"][name]
    assert report["dev_logits_max_abs_diff"] <= 1e-5
    assert report["failures"] == [] and report["passed"]


def test_two_processes_evaluate_exactly_as_one_and_one_writes_the_output(report):
    # dev has 51 reviews: an odd count, which a distributed eval sampler pads with a repeated review
    one, ranks = report["metrics"]["one_process"], report["metrics"]["processes"]
    for metrics in ranks:
        assert {k: metrics[k] for k in metrics if not k.endswith("loss")} == \
            {k: one[k] for k in one if not k.endswith("loss")}
        assert metrics["dev_loss"] == pytest.approx(one["dev_loss"], abs=1e-6)
        assert metrics["test_loss"] == pytest.approx(one["test_loss"], abs=1e-6)
    assert report["best_checkpoint"]["processes"] == [report["best_checkpoint"]["one_process"]] * 2
    averaged = report["averaged_checkpoints"]
    assert averaged["one_process"] == ["checkpoint-5", "checkpoint-10"]
    assert averaged["processes"] == [averaged["one_process"]] * 2
    assert report["output_history_lines"] == 1  # one process wrote resolved_args_history.jsonl


def test_each_process_draws_its_own_dropout_masks(report):
    assert report["dropout_seeds"] == [42, 43]  # rank 0 keeps the one-process stream (seed 42)
