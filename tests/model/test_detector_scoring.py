"""FedCLDetector's chunked scoring against the former composition (benchmarks/scoring_reference.py), on real rows."""

import numpy as np
import pytest
import torch
from torch import nn

from conftest import NBAIOT
from fedcl.data import NodeScaler, leakage_guard
from fedcl.model import FedCLDetector, build_encoder
from fedcl.model._detector import _CHUNK
from scoring_reference import reference_knn, reference_scores, reference_transform  # benchmarks/, on the test path

CLIENT = NBAIOT / "fedmse-iid" / "Client-1"
RTOL = 1e-5  # issue 14: scores within 1e-5 relative of the former path


def real_rows(folder: str) -> np.ndarray:
    return np.loadtxt(CLIENT / folder / "data.csv", delimiter=",")


class AffineEncoder(nn.Module):
    """Not an MLPEncoder: the detector runs it as it is."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(115, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.nan_to_num(0.0))


def make_encoder(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "other":
        return AffineEncoder()
    return build_encoder("mlp", 115, 128, 32, missing_mask=kind == "mlp-missing-mask")


@pytest.fixture(scope="module", params=[False, True], ids=["raw", "guarded"])
def rows(request):
    """Benign training rows, and rows to score over more than two chunks (guarded: with NaN cells)."""
    prepare = leakage_guard if request.param else np.asarray
    train = prepare(real_rows("normal"))
    scored = prepare(np.vstack([real_rows("test_normal"), real_rows("abnormal")]))
    scored = np.resize(scored, (2 * _CHUNK + 123, scored.shape[1]))
    scored[1, :3] = [1e39, -1e300, -0.0]  # beyond float32 (clipped), and a signed zero
    return train, scored


@pytest.mark.parametrize("kind", ["mlp", "mlp-missing-mask", "other"])
@pytest.mark.parametrize("rows_per_reference", [2, 1])  # k-means centroids, or the training rows themselves
def test_scores_match_former_path(rows, kind, rows_per_reference, one_torch_thread):
    train, scored = rows
    detector = FedCLDetector(make_encoder(kind), n_references=1000, rows_per_reference=rows_per_reference).fit(train)

    scores = detector.decision_function(scored)

    expected = reference_scores(detector, scored)
    assert scores.shape == (len(scored),) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, expected, rtol=RTOL, atol=0)


@pytest.mark.parametrize("rows_per_reference", [2, 1])
def test_training_scores_match_former_knn(rows, rows_per_reference, one_torch_thread):
    train, _ = rows
    # trim_fraction=0: every row a reference (trimmed rows are scored without the skip: test_detector.py)
    detector = FedCLDetector(make_encoder("mlp"), n_references=1000, rows_per_reference=rows_per_reference,
                             trim_fraction=0.0).fit(train)
    skip = int(rows_per_reference == 1)  # references = the rows: leave each row out

    with torch.inference_mode():
        z = detector.encoder(torch.from_numpy(reference_transform(detector.scaler_, train)))
    expected = reference_knn((z - detector.mean_) / detector.std_, detector.references_,
                             detector.n_neighbors + skip, skip, detector._spacing)

    np.testing.assert_allclose(detector.decision_scores_, expected, rtol=RTOL, atol=0)


def test_a_row_scores_the_same_alone_and_in_a_batch(rows, one_torch_thread):
    train, scored = rows
    detector = FedCLDetector(make_encoder("mlp")).fit(train)

    batch = detector.decision_function(scored)

    alone = np.concatenate([detector.decision_function(scored[i : i + 1]) for i in (0, 1, _CHUNK, len(scored) - 1)])
    np.testing.assert_allclose(alone, batch[[0, 1, _CHUNK, len(scored) - 1]], rtol=RTOL, atol=0)


@pytest.mark.parametrize("keep_missing", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scaler_keeps_former_roundings(rows, keep_missing, dtype):
    train, scored = rows
    scaler = NodeScaler(keep_missing=keep_missing).fit(train)
    x = scored if dtype == np.float64 else np.clip(scored, -1e38, 1e38).astype(np.float32)  # float32 has no 1e39

    scaled = scaler.transform(x)

    expected = reference_transform(scaler, x)
    assert scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, expected)  # NaN in the same cells
    np.testing.assert_array_equal(np.signbit(scaled), np.signbit(expected))


def every_float32_scale() -> np.ndarray:
    """Cells from the smallest denormal to the largest float32 and beyond, both signs, zeros and NaN."""
    magnitudes = np.ldexp(1.0, np.arange(-149, 128)).astype(np.float32)  # every power of two
    near = np.concatenate([np.nextafter(magnitudes, np.float32(0)), magnitudes, np.nextafter(magnitudes, np.float32(np.inf))])
    floor = np.float32(2.0**-24)  # around the floor the scaler's log1p runs on
    around_floor = floor + np.arange(-300, 300, dtype=np.float32) * np.spacing(floor)
    cells = np.concatenate([near, around_floor, [0.0, 1e39, 1e300, np.nan]])
    return np.concatenate([cells, -cells])


@pytest.mark.parametrize("keep_missing", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scaler_keeps_former_roundings_at_every_scale(rows, keep_missing, dtype):
    train, _ = rows
    scaler = NodeScaler(keep_missing=keep_missing).fit(train)
    cells = every_float32_scale()
    x = np.resize(cells, (-(-len(cells) // 115) + 3, 115))  # each value in several columns
    x = x if dtype == np.float64 else np.clip(x, -1e38, 1e38).astype(np.float32)

    scaled = scaler.transform(x)

    expected = reference_transform(scaler, x)
    np.testing.assert_array_equal(scaled, expected)
    np.testing.assert_array_equal(np.signbit(scaled), np.signbit(expected))


def test_numpy_log1p_is_what_the_scaler_assumes():
    # NodeScaler runs float32 log1p on max(|x|, 2^-24), then takes min(result, |x|): exact as long as
    # log1p(a) == a below 2^-24 and log1p(a) <= a above (checked once over every float32; sampled here).
    rng = np.random.default_rng(0)
    floor_bits = np.float32(2.0**-24).view(np.int32)
    bits = np.concatenate([rng.integers(0, 0x7F800000, 2_000_000, dtype=np.int32),
                           np.arange(floor_bits - 100_000, floor_bits + 100_000, dtype=np.int32)])
    a = bits.view(np.float32)

    log1p = np.log1p(a)

    below = a < np.float32(2.0**-24)
    np.testing.assert_array_equal(log1p[below], a[below])
    assert np.all(log1p[~below] <= a[~below])


@pytest.mark.parametrize("lent", [False, True], ids=["own-buffers", "lent-buffers"])
@pytest.mark.parametrize("block", [1, 100, _CHUNK])
def test_iter_transform_gives_transform_block_by_block(rows, block, lent):
    train, scored = rows
    scaler = NodeScaler(keep_missing=True).fit(train)
    buffers = dict(out=np.full((block + 5, 115), np.nan, np.float32), work=np.empty((2, block + 5, 115), np.float32))

    # one buffer for every block: copy each block before asking for the next
    blocks = [b.copy() for b in scaler.iter_transform(scored, rows=block, **(buffers if lent else {}))]

    assert [len(b) for b in blocks[:-1]] == [block] * (len(blocks) - 1)
    np.testing.assert_array_equal(np.vstack(blocks), scaler.transform(scored))


def test_infinite_cells_are_rejected(rows):
    train, scored = rows
    detector = FedCLDetector(make_encoder("mlp")).fit(train)
    x = scored[:10].copy()
    x[4, 7] = -np.inf

    with pytest.raises(ValueError, match="infinity"):
        detector.decision_function(x)
    with pytest.raises(ValueError, match="infinity"):
        detector.scaler_.transform(x)


def test_no_rows_no_scores(rows):
    train, _ = rows
    detector = FedCLDetector(make_encoder("mlp")).fit(train)

    scores = detector.decision_function(np.empty((0, 115)))

    assert scores.shape == (0,) and scores.dtype == np.float64
