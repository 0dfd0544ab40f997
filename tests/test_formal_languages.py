"""Property tests for `rnn_weightspace.tasks.formal_languages` (the lighter checks live in its notebook)."""
import pytest
import torch

from rnn_weightspace.tasks.formal_languages import FORMAL_LANGUAGES, FormalLanguageFamily, task_entropy, task_name

FL = FORMAL_LANGUAGES
TASKS = FL.tasks  # [216, 4]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _valid_batch(n_per_task: int = 2, seed: int = 0):
    "Valid sequences for every task: tokens [216*n_per_task, 42], tasks [216*n_per_task, 4]."
    toks = FL.sample(TASKS, n_per_task, generator=_gen(seed)).reshape(-1, FL.seq_len)
    return toks, TASKS.repeat_interleave(n_per_task, 0)


def _string_len(toks: torch.Tensor) -> torch.Tensor:
    "Number of symbols between the BOS and the first EOS."
    return ((toks[..., 1:] == FL.eos).cumsum(-1) == 0).sum(-1)


def test_every_task_and_every_n():
    n = torch.arange(FL.max_n + 3)  # 0..12: includes n out of range on both sides
    toks = FL.strings(TASKS[:, None, :], n[None, :])  # [216, 13, 42]
    n_min, n_max = FL.n_bounds(TASKS)
    valid = (n >= n_min[:, None]) & (n < n_max[:, None])
    assert valid.sum() > 1400
    assert torch.equal(FL.is_member(toks, TASKS[:, None, :]), valid)
    assert FL.official_accept(toks, TASKS[:, None, :])[valid].all()
    # the string has the advertised length, block by block
    assert torch.equal(_string_len(toks)[valid], (4 * n[None, :] + TASKS.sum(-1, keepdim=True)).expand_as(valid)[valid])
    for k in range(4):
        assert torch.equal((toks == k).sum(-1)[valid], (n[None, :] + TASKS[:, k : k + 1]).expand_as(valid)[valid])


def test_overflow_pairs_are_exactly_the_official_four():
    n = torch.arange(FL.max_n)
    n_min, n_max = FL.n_bounds(TASKS)
    official = n >= n_min[:, None]
    excluded = official & (n >= n_max[:, None])
    got = {(tuple(TASKS[i].tolist()), j) for i, j in excluded.nonzero().tolist()}
    assert got == {((0, 2, 2, 2), 9), ((0, 1, 2, 2), 9), ((0, 2, 1, 2), 9), ((0, 2, 2, 1), 9)}
    # those strings have no EOS when generated anyway
    toks = FL.strings(TASKS[excluded.nonzero()[:, 0]], n[excluded.nonzero()[:, 1]])
    assert not (toks == FL.eos).any()


def test_swap_adjacent_symbols_rejected_but_officially_accepted():
    toks, tasks = _valid_batch(2, seed=1)
    g = _gen(2)
    s = toks[:, 1:]
    boundary = (s[:, 1:] != s[:, :-1]) & (s[:, 1:] < FL.n_symbols)  # i, i+1 are different symbols
    rows = boundary.any(-1).nonzero()[:, 0]
    assert len(rows) > 400
    bad = toks[rows].clone()
    for r, row in zip(rows.tolist(), bad):
        cand = boundary[r].nonzero()[:, 0]
        i = cand[torch.randint(len(cand), (), generator=g)].item() + 1  # +1: back to tokens' indexing
        row[i], row[i + 1] = row[i + 1].clone(), row[i].clone()
    assert not FL.is_member(bad, tasks[rows]).any()
    assert FL.official_accept(bad, tasks[rows]).all()  # counts are unchanged


def test_drop_a_symbol_rejected():
    toks, tasks = _valid_batch(2, seed=3)
    lens = _string_len(toks)
    keep = lens > 0
    toks, tasks, lens = toks[keep], tasks[keep], lens[keep]
    drop = 1 + (torch.rand(len(toks), generator=_gen(4)) * lens).long()  # a position inside the string
    pos = torch.arange(FL.seq_len)
    src = torch.where(pos[None, :] >= drop[:, None], pos[None, :] + 1, pos[None, :]).clamp(max=FL.seq_len - 1)
    bad = toks.gather(1, src)  # shift left over the dropped position (the last token is EOS padding)
    assert torch.equal(_string_len(bad), lens - 1)
    assert not FL.is_member(bad, tasks).any()
    assert not FL.official_accept(bad, tasks).any()


def test_missing_eos_rejected():
    toks, tasks = _valid_batch(2, seed=5)
    bad = toks.masked_fill(toks == FL.eos, 0)
    assert not FL.is_member(bad, tasks).any()
    assert not FL.official_accept(bad, tasks).any()


def test_n_out_of_range_rejected_but_officially_accepted():
    n_min, n_max = FL.n_bounds(TASKS)
    toks = FL.strings(TASKS, n_max)  # one past the range
    fits = (toks == FL.eos).any(-1)  # those that still fit in the window
    assert fits.sum() > 50
    assert not FL.is_member(toks, TASKS).any()
    assert FL.official_accept(toks[fits], TASKS[fits]).all()


def test_inserted_bos_rejected_but_officially_accepted():
    toks, tasks = _valid_batch(2, seed=6)
    lens = _string_len(toks)
    room = lens < FL.seq_len - 2  # an EOS survives the shift
    toks, tasks, lens = toks[room], tasks[room], lens[room]
    at = 1 + (torch.rand(len(toks), generator=_gen(7)) * (lens + 1)).long()  # anywhere from the first symbol to the EOS
    pos = torch.arange(FL.seq_len)
    src = torch.where(pos[None, :] > at[:, None], pos[None, :] - 1, pos[None, :])
    bad = toks.gather(1, src)
    bad[torch.arange(len(bad)), at] = FL.bos
    assert not FL.is_member(bad, tasks).any()
    assert FL.official_accept(bad, tasks).all()


def test_block_permutation_officially_accepted():
    toks, tasks = _valid_batch(1, seed=8)
    lens = _string_len(toks)
    s = toks[:, 1:]
    live = torch.arange(FL.seq_len - 1)[None, :] < lens[:, None]
    # reverse the block order: sort the symbols descending (d..a), keep the EOS padding in place
    key = torch.where(live, -s, torch.full_like(s, 99))
    perm = toks.clone()
    perm[:, 1:] = torch.where(live, -key.sort(-1).values, s)
    distinct = (torch.stack([(s == k) & live for k in range(4)], 1).any(-1)).sum(-1) > 1
    assert distinct.sum() > 150
    assert FL.official_accept(perm, tasks).all()
    assert torch.equal(FL.is_member(perm, tasks), ~distinct)  # only single-block strings survive the reversal
    # a^n b^n ... written as (ab)^n: same counts, wrong order
    d0 = torch.zeros(2, dtype=torch.long)
    fl2 = FormalLanguageFamily(n_symbols=2, seq_len=10)
    abab = torch.tensor([fl2.bos, 0, 1, 0, 1, fl2.eos, fl2.eos, fl2.eos, fl2.eos, fl2.eos])
    assert fl2.official_accept(abab, d0) and not fl2.is_member(abab, d0)


def test_garbage_after_eos_ignored():
    toks, tasks = _valid_batch(1, seed=9)
    after = (toks == FL.eos).cumsum(-1) > 1  # after the first EOS
    noisy = torch.where(after, torch.randint(0, FL.vocab_size, toks.shape, generator=_gen(10)), toks)
    assert FL.is_member(noisy, tasks).all()
    assert FL.official_accept(noisy, tasks).all()


def test_official_accept_does_not_mutate():
    toks, tasks = _valid_batch(1, seed=11)
    toks[::3, 5] = FL.eos  # some early EOS
    before = toks.clone()
    FL.official_accept(toks, tasks)
    FL.is_member(toks, tasks)
    assert torch.equal(toks, before)


def test_lm_batch_shapes():
    for shape in [(5,), (3, 4), (2, 3, 4)]:
        toks = torch.randint(0, FL.vocab_size, (*shape, FL.seq_len))
        x, y = FL.lm_batch(toks)
        assert x.shape == (*shape, FL.seq_len - 1, FL.vocab_size) and x.dtype == torch.float32
        assert y.shape == (*shape, FL.seq_len - 1) and y.dtype == torch.long
        assert torch.equal(x.argmax(-1), toks[..., :-1]) and torch.equal(x.sum(-1), torch.ones(*shape, FL.seq_len - 1))
        assert torch.equal(y, toks[..., 1:])


def test_batched_strings_match_per_task():
    idx = torch.randint(0, FL.n_tasks, (12,), generator=_gen(12))
    tasks = TASKS[idx]
    n = FL.sample_n(tasks, 6, generator=_gen(13))  # [12, 6]
    batched = FL.strings(tasks[:, None, :], n)
    assert batched.shape == (12, 6, FL.seq_len)
    for r in range(12):
        assert torch.equal(batched[r], FL.strings(tasks[r], n[r]))
        for b in range(6):
            assert torch.equal(batched[r, b], FL.strings(tasks[r], n[r, b]))
    assert torch.equal(FL.sample(tasks, 6, generator=_gen(13)), batched)


def test_sampling_is_deterministic_and_uses_only_the_generator():
    task = torch.tensor([0, -2, 1, 0])
    state = torch.get_rng_state()
    a = FL.sample(task, 64, generator=_gen(42))
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    assert torch.equal(a, FL.sample(task, 64, generator=_gen(42)))
    assert not torch.equal(a, FL.sample(task, 64, generator=_gen(43)))
    assert FL.is_member(a, task).all()


def test_n_is_uniform_over_its_range():
    for task in [torch.tensor([0, 0, 0, 0]), torch.tensor([0, -3, 1, 2]), torch.tensor([0, 2, 2, 2])]:
        n_min, n_max = (int(v) for v in FL.n_bounds(task))
        n = FL.sample_n(task, 20000, generator=_gen(14))
        freq = torch.bincount(n - n_min, minlength=n_max - n_min).double() / len(n)
        assert len(freq) == n_max - n_min
        assert (freq - 1 / (n_max - n_min)).abs().max() < 0.015


def test_task_index_entropy_and_names():
    assert torch.equal(FL.task_index(TASKS), torch.arange(FL.n_tasks))
    ent = task_entropy(TASKS)
    assert torch.equal(TASKS[ent.argmax()], torch.zeros(4, dtype=torch.long))
    # entropy depends only on the multiset of offsets (relative to the minimum)
    assert torch.allclose(task_entropy(TASKS[:, [0, 3, 1, 2]]), ent)
    assert task_name(TASKS[0]) == "a^n b^(n-3) c^(n-3) d^(n-3)"
    assert len({task_name(t) for t in TASKS}) == FL.n_tasks


def test_other_family_sizes():
    fl = FormalLanguageFamily(n_symbols=2, seq_len=22)  # the official script's defaults
    assert (fl.bos, fl.eos, fl.vocab_size, fl.n_tasks) == (2, 3, 4, 6)
    n = torch.arange(fl.max_n)
    toks = fl.strings(fl.tasks[:, None, :], n)
    n_min, n_max = fl.n_bounds(fl.tasks)
    valid = (n >= n_min[:, None]) & (n < n_max[:, None])
    assert torch.equal(fl.is_member(toks, fl.tasks[:, None, :]), valid)
    assert fl.decode(fl.strings(torch.tensor([0, 1]), torch.tensor(2))) == ["^aabbb$"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_device_follows_inputs():
    tasks = TASKS.cuda()
    toks = FL.sample(tasks, 3, generator=torch.Generator().manual_seed(0))
    assert toks.is_cuda and FL.is_member(toks, tasks[:, None, :]).all()
    assert FL.official_accept(toks, tasks[:, None, :]).all() and FL.lm_batch(toks)[0].is_cuda
