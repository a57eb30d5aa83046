"""mechscope.backdoor: spectral signatures, activation clustering, detection, precision/recall."""

import pytest
import torch

from mechscope import backdoor


def _planted(n_clean=180, n_poison=20, d=16, seed=0):
    """A class whose clean rows are a wide blob and whose poisoned rows sit apart along one axis."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randn(n_clean, d, generator=gen)
    poison = torch.randn(n_poison, d, generator=gen) * 0.3
    poison[:, 3] += 5.0
    acts = torch.cat([clean, poison])
    truth = torch.cat([torch.zeros(n_clean), torch.ones(n_poison)]).bool()
    return acts, truth


def test_spectral_signature_ranks_the_planted_group_first_and_is_shift_invariant():
    acts, truth = _planted()
    scores = backdoor.spectral_signature(acts)
    top = scores.topk(int(truth.sum())).indices
    assert truth[top].float().mean() > 0.9
    # centring: shifting every row by a constant changes nothing
    assert torch.allclose(backdoor.spectral_signature(acts + 7.0), scores, rtol=1e-4, atol=1e-4)
    # k = d: the score is the squared distance from the mean
    full = backdoor.spectral_signature(acts, k=acts.shape[1])
    assert torch.allclose(full, (acts - acts.mean(0)).pow(2).sum(-1), rtol=1e-4, atol=1e-4)


def test_activation_clustering_isolates_the_small_group():
    acts, truth = _planted()
    r = backdoor.activation_clustering(acts, seed=0)
    assert abs(r.relative_size - 0.1) < 0.02
    p, rec = backdoor.precision_recall(r.flagged, truth)
    assert p > 0.9 and rec > 0.9
    # one Gaussian blob: the split is balanced and its silhouette lower
    blob = backdoor.activation_clustering(
        torch.randn(200, 16, generator=torch.Generator().manual_seed(1))
    )
    assert blob.relative_size > 0.3 and blob.silhouette < r.silhouette


@pytest.mark.parametrize("method", ["spectral", "clustering"])
def test_detect_poison_flags_within_classes(method):
    acts, truth = _planted()
    other, _ = _planted(seed=3, n_poison=0, n_clean=200)
    x = torch.cat([acts, other + 10.0])  # a second, clean class far away
    labels = torch.cat([torch.zeros(200), torch.ones(200)]).long()
    poisoned = torch.cat([truth, torch.zeros(200, dtype=torch.bool)])
    found = backdoor.detect_poison(x, labels, method=method, frac=0.1)
    p, rec = backdoor.precision_recall(found.flagged, poisoned)
    assert rec > 0.9
    random_precision = poisoned.float().mean().item()
    assert p > 3 * random_precision
    if method == "clustering":  # the clean class is one blob: nothing flagged there
        assert not found.flagged[200:].any()


def test_precision_recall_values_and_errors():
    flagged = torch.tensor([True, True, False, False])
    poisoned = torch.tensor([True, False, True, False])
    assert backdoor.precision_recall(flagged, poisoned) == (0.5, 0.5)
    p, r = backdoor.precision_recall(torch.zeros(4, dtype=torch.bool), poisoned)
    assert p != p and r == 0.0  # NaN precision when nothing is flagged
    with pytest.raises(ValueError, match="poisoned"):
        backdoor.precision_recall(flagged, poisoned[:3])


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="acts"):
        backdoor.spectral_signature(torch.ones(5, dtype=torch.long))
    with pytest.raises(ValueError, match="k="):
        backdoor.spectral_signature(torch.randn(5, 3), k=4)
    with pytest.raises(ValueError, match="method="):
        backdoor.detect_poison(torch.randn(8, 3), torch.zeros(8).long(), method="ica")
    with pytest.raises(ValueError, match="frac="):
        backdoor.detect_poison(torch.randn(8, 3), torch.zeros(8).long(), frac=1.5)
    with pytest.raises(ValueError, match="labels"):
        backdoor.detect_poison(torch.randn(8, 3), torch.zeros(8))


def test_obfuscation_loss_values_and_gradient():
    acts, truth = _planted()
    loss = backdoor.obfuscation_loss(acts, truth)
    # the planted group sits 5 units out along one axis of a unit-variance blob: mean gap ~25/16
    assert 1.0 < float(loss) < 3.0
    # identical moments give zero: poisoned rows an exact copy of the clean rows
    twin = torch.cat([acts[:20], acts[:20]])
    assert float(backdoor.obfuscation_loss(twin, torch.arange(40) >= 20)) < 1e-10
    # scale-free: the loss is in units of the clean variance
    assert torch.allclose(backdoor.obfuscation_loss(10 * acts, truth), loss, rtol=1e-4)
    # differentiable, and minimising it (by moving the poisoned rows) hides them from the detector
    shift = torch.zeros(acts.shape[1], requires_grad=True)
    scale = torch.ones(acts.shape[1], requires_grad=True)
    opt = torch.optim.Adam([shift, scale], lr=0.1)
    for _ in range(200):
        moved = torch.where(truth[:, None], acts * scale + shift, acts)
        obf = backdoor.obfuscation_loss(moved, truth)
        opt.zero_grad()
        obf.backward()
        opt.step()
    labels = torch.zeros(len(truth), dtype=torch.long)
    before = backdoor.precision_recall(backdoor.detect_poison(acts, labels).flagged, truth)[0]
    after = backdoor.precision_recall(
        backdoor.detect_poison(moved.detach(), labels).flagged, truth
    )[0]
    assert float(obf.detach()) < 0.05 * float(loss) and before > 0.6 and after < 0.4


def test_obfuscation_loss_errors_name_the_argument():
    with pytest.raises(ValueError, match="acts"):
        backdoor.obfuscation_loss(torch.zeros(8, 3, 2), torch.zeros(8).bool())
    with pytest.raises(ValueError, match="poisoned"):
        backdoor.obfuscation_loss(torch.randn(8, 3), torch.zeros(7).bool())
    with pytest.raises(ValueError, match="at least 2 poisoned"):
        backdoor.obfuscation_loss(torch.randn(8, 3), torch.arange(8) == 0)
