"""Length-bucketed batches: every pair once per epoch, similar lengths together, same seed same batches."""

from __future__ import annotations

import numpy as np

from model.sampler import LengthBucketSampler, ordered_batches, restore_order

LENGTHS = np.random.default_rng(0).integers(1, 320, size=1000).tolist()


def test_every_pair_once_per_epoch_in_batches_of_at_most_batch_size():
    sampler = LengthBucketSampler(LENGTHS, batch_size=32, seed=1, pool_batches=4)
    for _ in range(2):
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(i for b in batches for i in b) == list(range(1000))
        assert max(len(b) for b in batches) == 32


def test_batches_hold_similar_lengths_and_waste_little_padding():
    lengths = np.asarray(LENGTHS)

    def padding(batches):
        return sum(lengths[b].max() * len(b) - lengths[b].sum() for b in batches) / lengths.sum()

    bucketed = list(LengthBucketSampler(LENGTHS, batch_size=32, seed=1))
    shuffled = [list(range(i, min(i + 32, 1000))) for i in range(0, 1000, 32)]
    assert padding(bucketed) < 0.05 < 0.5 < padding(shuffled)


def test_same_seed_same_batches_other_seed_other_batches_new_order_each_epoch():
    a, b = LengthBucketSampler(LENGTHS, 32, seed=7), LengthBucketSampler(LENGTHS, 32, seed=7)
    first_a, first_b = list(a), list(b)
    assert first_a == first_b and list(a) == list(b)
    assert list(LengthBucketSampler(LENGTHS, 32, seed=8)) != first_a
    assert list(a) != first_a  # the third epoch differs from the first


def test_ordered_batches_round_trip_to_the_data_order():
    batches = ordered_batches(LENGTHS, 64)
    rows = np.asarray([[LENGTHS[i]] for b in batches for i in b])
    assert restore_order(rows, batches)[:, 0].tolist() == LENGTHS
