"""Find the lattice on which a periodic pattern repeats: the mark's geometric sync.

The image mark repeats one square tile over the whole image. Whatever affine
map a platform applied since (rotation, uniform or uneven scaling, a slight
shear from both, any crop or translation), the repetitions still sit on a
lattice, now spanned by two vectors ``b1, b2`` that are the images of the
tile's sides. The autocorrelation of the (whitened) image peaks on that
lattice, so the two vectors *are* the transform, up to the tile's own
symmetry (which of the eight rotations/reflections of a square; the caller
tries all eight). No template is added to the image for this: the repetition
already carried by the mark is the template, and the decoder's search over
these hypotheses enters its false-alarm bound like any other alignment.

Steps, all on one FFT of the working luma:

1. power spectrum, divided by its local mean: the image's content has a
   smooth spectrum and is flattened; the mark's repetition is a comb of narrow
   spikes and stands out (a "whitened" autocorrelation);
2. its inverse FFT (the autocorrelation), minus a local mean: narrow peaks;
3. the strongest local maxima in the lag range where a tile period can be,
   ranked by their height above the autocorrelation's mean along the ray
   from the origin next to them (:func:`_heights`: a straight edge makes a
   ridge through the origin, which must not pass for a peak);
4. every pair of them that spans a plausible lattice (similar lengths, roughly
   perpendicular) is scored on its lattice points within reach (at least the
   four nearest: ``b1``, ``b2``, ``b1 + b2``, ``b1 - b2``); the best few
   pairs are kept, and a finer lattice found among the next few pairs that
   contains a kept one is tried just before it (the last kept drops out);
5. each kept pair is refined by a least-squares fit to the sub-pixel peak
   positions of every lattice point within reach, which is what keeps the
   fold sharp across many periods.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

_SPEC_SMOOTH = 0  # frequency bins: local mean the power spectrum is divided by
_PEAK_SMOOTH = 15  # lag px: local mean subtracted from the autocorrelation
_PEAKS = 12  # local maxima considered for lattice vectors
_MAX_ASPECT = 1.5  # |b2| / |b1| allowed (the issue asks 0.75-1.33, plus rotation)
_MIN_SINE = 0.8  # |sin| of the angle between b1 and b2 (>= 53 degrees)
_SCORE_QUANTILE = 0.25  # of the lattice points' heights: scores a pair
_REFINE_ORDER = 3  # lattice points n1 b1 + n2 b2 with |n1|, |n2| <= this refine the fit
_PARTNERS = 6  # strongest peaks whose perpendicular partner is looked for
_RANKED = 3 * _PEAKS  # local maxima ranked by their height above the ray (_heights)
# where the ray's mean is taken, as shares of the lag's length on each side:
# beyond the lag's own peak (about a chip, 1/32 of a tile side, each way) and
# short of the next lattice point along the ray (at least a side away)
_RAY = np.concatenate([-np.linspace(0.06, 0.2, 6), np.linspace(0.06, 0.2, 6)])
_RAY_AND_LAG = np.concatenate([[0.0], _RAY])


def autocorrelation(z: np.ndarray) -> np.ndarray:
    """Spectrally whitened circular autocorrelation of ``z``, zero lag at [0, 0]."""
    shape = [sfft.next_fast_len(n, real=True) for n in z.shape]
    spec = sfft.rfft2(z, s=shape, workers=1)
    power = spec.real**2 + spec.imag**2
    # wrap along the full axis; the half axis of a real FFT ends at Nyquist
    if _SPEC_SMOOTH:
        local = ndimage.uniform_filter(power, _SPEC_SMOOTH, mode=("wrap", "nearest"))
        power /= local + 1e-9 * float(local.mean() + 1e-30)
    r = sfft.irfft2(power, s=shape, workers=1)
    # a peak must stand out along both axes: straight edges and the image's
    # own borders make ridges along the axes, which a 2-D mean does not remove
    r = np.minimum(
        r - _wrapped_mean(r, _PEAK_SMOOTH),
        r - ndimage.uniform_filter1d(r, _PEAK_SMOOTH, axis=1, mode="wrap"),
    )
    return r / max(float(r[0, 0]), 1e-12)


def _wrapped_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Circular mean of ``x`` over ``n`` (odd) consecutive rows, as
    ``ndimage.uniform_filter1d(x, n, axis=0, mode="wrap")``, from sums of
    whole shifted rows doubled in length (a few passes over contiguous
    memory; the filter walks down the columns, several times slower).
    """
    k = n // 2
    hh = x.shape[0]
    block = np.concatenate([x[-k:], x, x[:k]])  # block[i] = the sum of rows i, i + 1, ...
    width, offset, out = 1, 0, None  # ... of this many rows; out sums rows i .. i + offset
    while n:
        if n & 1:  # the binary digits of n: add the next block of width rows
            if out is None:
                out = block[offset : offset + hh].copy()
            else:
                out += block[offset : offset + hh]
            offset += width
        n >>= 1
        if n:
            block = block[:-width] + block[width:]
            width *= 2
    out *= out.dtype.type(1.0 / (2 * k + 1))
    return out


def _sample(r: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bilinear values of the circular ``r`` at lag vectors ``pts`` (n x 2: dy, dx)."""
    hh, ww = r.shape
    return ndimage.map_coordinates(r, [pts[:, 0] % hh, pts[:, 1] % ww], order=1, mode="grid-wrap")


def _heights(r: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Peak heights of ``r`` at lag vectors ``pts`` (n x 2): its value minus its mean
    along the ray from the origin just before and beyond each lag.

    A straight edge anywhere in the image makes a ridge through the origin of
    the autocorrelation along the edge's direction, whose local maxima look
    like peaks. The corners a rotation fills with black are such edges, and
    they run along the rotated tile's own sides, so the ridge lies exactly on
    the lattice vectors and on their halves and thirds, which then pass for a
    finer tile (a 10-degree rotation of a 1232x928 image was decoded as a
    lattice with a half-side). The axis-aligned means in :func:`autocorrelation`
    remove only the ridges along the axes (the image's own borders); this
    removes a ridge in any direction and leaves a peak standing on it.
    """
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    # each lag, then its ray's points, in one sampling call
    ray = pts[:, None, :] * (1.0 + _RAY_AND_LAG[None, :, None])
    vals = _sample(r, ray.reshape(-1, 2)).reshape(len(pts), _RAY_AND_LAG.size)
    return vals[:, 0] - vals[:, 1:].mean(axis=1)


# lattice points n1 a + n2 b (half plane, |n| <= 2, not 0) that score a pair
_HALF = np.array(
    [(n1, n2) for n1 in range(-2, 3) for n2 in range(0, 3) if n2 > 0 or n1 > 0], dtype=np.float64
)
# a, b, a + b and a - b (as its mirror b - a, the same value: r is symmetric)
_NEAREST = np.zeros(len(_HALF), dtype=bool)
for _q in ((1, 0), (0, 1), (1, 1), (-1, 1)):
    _NEAREST |= (_q == _HALF).all(axis=1)


def _overlap(pts: np.ndarray, hh: int, ww: int) -> np.ndarray:
    """Share of the image that overlaps itself at each lag: a longer lag sums fewer
    pixels, so its correlation is scaled back up before lags are compared."""
    return np.maximum((1 - np.abs(pts[:, 0]) / hh) * (1 - np.abs(pts[:, 1]) / ww), 0.05)


_WIN = np.arange(-2, 3)


def _peaks_at(r: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel positions (n x 2), heights and validity of the local maxima nearest
    each of ``pts`` (n x 2), all at once: a 5 x 5 window around each point, a
    maximum on a window's edge is no peak, and a parabola through the maximum
    and its neighbours places it along each axis."""
    hh, ww = r.shape
    centre = np.rint(pts).astype(np.int64)
    ys = (centre[:, 0, None] + _WIN) % hh
    xs = (centre[:, 1, None] + _WIN) % ww
    win = r[ys[:, :, None], xs[:, None, :]]  # n x 5 x 5
    k = np.argmax(win.reshape(len(pts), 25), axis=1)
    iy, ix = np.divmod(k, 5)
    valid = (iy > 0) & (iy < 4) & (ix > 0) & (ix < 4)
    iy, ix = np.clip(iy, 1, 3), np.clip(ix, 1, 3)
    n = np.arange(len(pts))
    mid = win[n, iy, ix]
    pos = (centre - 2 + np.stack([iy, ix], axis=1)).astype(np.float64)
    for axis, (lo, hi) in enumerate(
        ((win[n, iy - 1, ix], win[n, iy + 1, ix]), (win[n, iy, ix - 1], win[n, iy, ix + 1]))
    ):
        den = lo - 2 * mid + hi
        safe = np.where(den < 0, den, -1.0)
        pos[:, axis] += np.where(den < 0, np.clip(0.5 * (lo - hi) / safe, -0.5, 0.5), 0.0)
    return pos, mid.astype(np.float64), valid


_ORDERS = np.array(
    [
        (n1, n2)
        for n1 in range(-_REFINE_ORDER, _REFINE_ORDER + 1)
        for n2 in range(0, _REFINE_ORDER + 1)
        if n2 > 0 or n1 > 0  # half the lattice: r is symmetric
    ],
    dtype=np.float64,
)


def _refine(r: np.ndarray, basis: np.ndarray, reach: float) -> np.ndarray:
    """Least-squares lattice basis from the peaks near every lattice point in reach."""
    pts = _ORDERS @ basis
    near = np.hypot(pts[:, 0], pts[:, 1]) <= reach
    if not near.any():
        return basis
    pts, n = pts[near], _ORDERS[near]
    pos, height, valid = _peaks_at(r, pts)
    keep = valid & (height > 0) & (np.hypot(*(pos - pts).T) <= 1.5)
    if np.count_nonzero(keep) < 3:
        return basis
    w = np.sqrt(height[keep])[:, None]
    fit, *_ = np.linalg.lstsq(n[keep] * w, pos[keep] * w, rcond=None)
    return fit


def lattices(z: np.ndarray, lo: float, hi: float, tries: int) -> list[np.ndarray]:
    """Up to ``tries`` lattice bases (2 x 2, rows ``b1``, ``b2`` as (dy, dx) px), best first.

    ``lo`` and ``hi`` bound the length of a tile side in pixels of ``z``.
    """
    if hi <= lo:
        return []
    r = autocorrelation(z)
    hh, ww = r.shape
    reach = min(hh, ww) / 2.0
    hi = min(hi, reach)
    # lags of the half plane dx >= 0, as a centred window
    span = int(np.ceil(hi)) + 2
    ys = np.arange(-span, span + 1)
    xs = np.arange(0, span + 1)
    win = r[np.ix_(ys % hh, xs % ww)]
    dy, dx = np.meshgrid(ys, xs, indexing="ij")
    radius = np.hypot(dy, dx)
    ok = (radius >= lo) & (radius <= hi) & (win > 0)
    ok &= ~((dx == 0) & (dy < 0))  # the other half of the dx = 0 column
    cand = _strongest_maxima(win, ok, _RANKED)
    vecs = np.stack([dy.flat[cand], dx.flat[cand]], axis=1).astype(np.float64)
    height = _heights(r, vecs)
    best = np.argsort(-height, kind="stable")[:_PEAKS]
    vecs = vecs[best[height[best] > 0]]
    if len(vecs) < 2:
        return []
    vecs = np.concatenate([vecs, _partners(r, vecs[:_PARTNERS], lo, hi)])
    scores, bases = _pair_scores(r, vecs, reach)
    order = np.argsort(-scores, kind="stable")
    scored = [(float(scores[k]), bases[k]) for k in order]
    found: list[np.ndarray] = []  # the lattices to try, best first
    seen: list[np.ndarray] = []  # the pairs' own lattices, handled
    ahead = 0
    for score, basis in scored:
        if seen and np.any(_indices(basis, np.stack(seen)) == 1):
            continue  # another basis of a better pair's lattice
        seen.append(basis)
        finer = _finest(r, basis, score, lo)
        if len(found) < tries:
            # the pair itself, and the finer lattice it may be a sublattice
            # of: the sync score decides between them
            for option in (finer, basis):
                if len(found) == tries:
                    break
                fit = _refine(r, option, reach)
                # a refit or a refinement can collapse to a line
                if _plausible(fit, lo) and _new(fit, found):
                    found.append(fit)
            continue
        # Every slot is taken; the next few pairs still count through a finer
        # lattice that contains one of those taken, which goes just before it.
        # Pairs are scored on their own lattice points, and a coarse
        # sublattice of the tile (every fifth point: index 5 is beyond the
        # halves and thirds _finest looks for) can outscore the tile's own
        # pair, its few far points all strong where the tile's twelve include
        # weak ones (rotate 10 deg then JPEG 50 of a 1086x1448 image: the
        # tile's lattice came fifth). All of a sublattice's points are the
        # finer lattice's too, so the finer one explains at least as much.
        # A pair's own lattice is a sublattice of its _finest, so that one is
        # the one to test.
        coarse = np.flatnonzero(_indices(np.stack(found), finer) >= 2)
        if coarse.size:
            fit = _refine(r, finer, reach)
            if _plausible(fit, lo) and _new(fit, found):
                found.insert(int(coarse[0]), fit)
                found.pop()
        ahead += 1
        if ahead == tries:
            break
    return found


def _new(basis: np.ndarray, found: list[np.ndarray]) -> bool:
    """Whether ``basis`` spans a lattice none of ``found`` spans."""
    return not found or not np.any(_indices(basis, np.stack(found)) == 1)


def _strongest_maxima(win: np.ndarray, ok: np.ndarray, count: int) -> np.ndarray:
    """Flat indices of the ``count`` highest 5 x 5 local maxima of ``win`` where ``ok``,
    highest first.

    Only the highest values are tested, in growing batches: any local maximum
    at least as high as the lowest value tested is among them, so once
    ``count`` are found they are the highest of all (the full maximum filter
    this replaces cost more than the rest of the peak search).
    """
    flat = np.flatnonzero(ok)
    vals = win.flat[flat]
    ww = win.shape[1]
    padded = np.pad(win, 2, mode="edge")  # the filter's "nearest" edges
    batch = 64 * count
    while True:
        top = flat if batch >= flat.size else flat[np.argpartition(-vals, batch)[:batch]]
        top = top[np.argsort(-win.flat[top], kind="stable")]
        y, x = np.divmod(top, ww)
        hood = padded[(y[:, None] + _WIN + 2)[:, :, None], (x[:, None] + _WIN + 2)[:, None, :]]
        is_max = win.flat[top] == hood.reshape(top.size, 25).max(axis=1)
        found = top[is_max]
        if found.size >= count or top.size == flat.size:
            return found[:count]
        batch *= 4


def _pair_scores(r: np.ndarray, vecs: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Scores and bases (k x 2 x 2) of every plausible pair of peaks, in pair order.

    Each peak also stands for its mirror -v. A pair is kept when the two are
    of similar length and far from parallel; its score is a low quantile of
    the (overlap-corrected) autocorrelation over its lattice points within
    reach: every point of a true lattice peaks, a chance pair of content
    peaks rarely has a third.
    """
    hh, ww = r.shape
    i, j = np.triu_indices(len(vecs), k=1)
    a, b = vecs[i], vecs[j]
    la, lb = np.hypot(*a.T), np.hypot(*b.T)
    keep = np.maximum(la, lb) <= _MAX_ASPECT * np.minimum(la, lb)
    keep &= np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]) >= _MIN_SINE * la * lb
    a, b = a[keep], b[keep]
    if a.shape[0] == 0:
        return np.empty(0), np.empty((0, 2, 2))
    pts = _HALF[None, :, 0, None] * a[:, None, :] + _HALF[None, :, 1, None] * b[:, None, :]
    near = np.hypot(pts[..., 0], pts[..., 1]) <= reach
    # too few points in reach (a small image): the four nearest stand in
    few = near.sum(axis=1) < 4
    near[few] = _NEAREST[None, :]
    flat = pts.reshape(-1, 2)
    vals = (_sample(r, flat) / _overlap(flat, hh, ww)).reshape(near.shape)
    # the quantile of each row's points in reach (numpy's linear method), at once
    ordered = np.sort(np.where(near, vals, np.inf), axis=1)
    at = _SCORE_QUANTILE * (near.sum(axis=1) - 1)
    below = np.floor(at).astype(np.int64)
    rows = np.arange(len(ordered))
    low = ordered[rows, below]
    high = ordered[rows, np.minimum(below + 1, near.sum(axis=1) - 1)]
    scores = low + (high - low) * (at - below)
    return scores, np.stack([a, b], axis=1)


def _plausible(basis: np.ndarray, lo: float) -> bool:
    """Whether ``basis`` can be a tile: both sides at least ``lo`` long and
    far from parallel (the fold and the duplicate test invert it)."""
    la, lb = np.hypot(*basis[0]), np.hypot(*basis[1])
    if not (np.isfinite(la) and np.isfinite(lb)) or min(la, lb) < 0.5 * lo:
        return False
    return abs(float(np.linalg.det(basis))) >= 0.5 * _MIN_SINE * la * lb


def _partners(r: np.ndarray, vecs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """For each vector, the strongest peak on its perpendicular, 1/1.36-1.36 as long.

    The tile is square: rotation and uniform scaling keep its second side
    perpendicular to the first and as long, a stretch along the axes keeps it
    perpendicular. On a small or strongly textured image one side's peak can
    be too weak to rank among the strongest (2.5 periods across a 480-px
    side, say), while the other side's is clear; this finds it next to it.
    """
    hh, ww = r.shape
    rays = []  # (perpendicular, lengths along it) per vector
    for v in vecs:
        p = np.array([-v[1], v[0]])
        if p[1] < 0 or (p[1] == 0 and p[0] < 0):
            p = -p  # the half plane the peaks were taken from
        length = float(np.hypot(*v))
        t = np.linspace(1 / 1.36, 1.36, max(8, int(length * 0.7)))
        rays.append((p, t[(t * length >= lo) & (t * length <= hi)]))
    if not any(t.size for _, t in rays):
        return np.empty((0, 2))
    # every ray's samples in one batch, then every guess's peak in another
    vals = np.split(
        _heights(r, np.concatenate([t[:, None] * p[None, :] for p, t in rays])),
        np.cumsum([t.size for _, t in rays])[:-1],
    )
    guesses = []
    for (p, t), along in zip(rays, vals, strict=True):
        if t.size == 0:
            continue
        # as long as v (rotation, uniform scale), and the ray's strongest (a stretch)
        for guess in dict.fromkeys((1.0, float(t[int(np.argmax(along))]))):
            cy, cx = np.round(guess * p).astype(int)
            ys, xs = np.arange(cy - 3, cy + 4), np.arange(cx - 3, cx + 4)
            k = int(np.argmax(r[np.ix_(ys % hh, xs % ww)]))
            pos = np.array([ys[k // 7], xs[k % 7]], dtype=np.float64)
            guesses.append(-pos if pos[1] < 0 else pos)  # the same vector, in the half plane
        # and the square's other side itself: where the image's content has a
        # stronger peak a few px away (JPEG 50 after a thumbnail leaves the
        # tile's own peaks at the content's level), the box above snaps to it
        guesses.append(p.astype(np.float64))
    guesses = np.array(guesses).reshape(-1, 2)
    keep = (np.hypot(*guesses.T) >= lo) & (np.hypot(*guesses.T) <= hi)
    if keep.any():
        keep[keep] = _heights(r, guesses[keep]) > 0
    out: list[np.ndarray] = []
    for pos in guesses[keep]:
        if np.min(np.hypot(*(vecs - pos).T)) > 2 and not any(
            np.hypot(*(q - pos)) <= 2 for q in out
        ):
            out.append(pos)
    return np.array(out).reshape(-1, 2)


def _reduced(basis: np.ndarray) -> np.ndarray:
    """Lagrange-Gauss reduction: the two shortest vectors spanning the same lattice."""
    a, b = basis[0].copy(), basis[1].copy()
    for _ in range(16):
        if a @ a > b @ b:
            a, b = b, a
        m = round(float(a @ b) / float(a @ a))
        if m == 0:
            break
        b = b - m * a
    return np.stack([a, b])


def _finest(r: np.ndarray, basis: np.ndarray, score: float, lo: float) -> np.ndarray:
    """The finest lattice that still peaks everywhere, from ``basis`` or a sublattice of it.

    A pair of lattice points can span a sublattice (every other point, say
    the diagonals, or every third: the overlap weighting favours long lags,
    so a coarse sublattice can outscore the tile's own) that peaks just as
    well; a true half- or third-step point that peaks too means the real tile
    is the finer one.
    """
    hh, ww = r.shape
    for _ in range(3):
        a, b = basis
        best, finer = 0.5 * score, None
        # v / k generates a lattice k times finer; all of its k - 1 new points
        # on the way to v must peak, and the strongest such option wins
        steps = [(v, k, other) for k in (2, 3) for v, other in ((a, b), (b, a), (a + b, a))]
        steps.append((a - b, 3, a))
        steps = [st for st in steps if np.hypot(*st[0]) / st[1] >= lo]
        if not steps:
            return basis
        # every step's new points, found in one batch
        pts = np.array([v * j / k for v, k, _ in steps for j in range(1, k)])
        pos, _, valid = _peaks_at(r, pts)
        valid &= np.hypot(*(pos - pts).T) <= 1.5
        # above the ray: these points lie on the lattice vectors, exactly where
        # the ridge of a straight edge along a tile side would raise them
        height = np.where(valid, _heights(r, pos) / _overlap(pos, hh, ww), -np.inf)
        start = 0
        for v, k, other in steps:
            h = float(np.min(height[start : start + k - 1]))
            start += k - 1
            if h >= best:
                best, finer = h, _reduced(np.stack([v / k, other]))
        if finer is None:
            return basis
        basis = finer
    return basis


def _indices(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The index of each lattice ``a`` in each lattice ``b`` (bases as (..., 2, 2)
    arrays, broadcast against each other): the |determinant| of the integer
    matrix that writes ``a``'s vectors in ``b``'s basis (within 4% of a
    period), 0 where ``a`` is no sublattice of ``b``. Many at once: the search
    compares each pair with every lattice handled before it."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    det = b[..., 0, 0] * b[..., 1, 1] - b[..., 0, 1] * b[..., 1, 0]
    # the 2 x 2 inverses, written out
    inv = np.stack([b[..., 1, 1], -b[..., 0, 1], -b[..., 1, 0], b[..., 0, 0]], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        coeffs = a @ (inv.reshape(*inv.shape[:-1], 2, 2) / det[..., None, None])
        whole = np.round(coeffs)
        ok = np.max(np.abs(coeffs - whole), axis=(-2, -1)) <= 0.04  # False where NaN
    index = np.abs(
        np.round(whole[..., 0, 0] * whole[..., 1, 1] - whole[..., 0, 1] * whole[..., 1, 0])
    )
    return np.where(ok, index, 0.0)


def _same_lattice(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` is ``b`` up to a change of basis (within 4% of a period)."""
    return bool(_indices(a, b) == 1)


def _contains(fine: np.ndarray, coarse: np.ndarray) -> bool:
    """Whether ``coarse`` is a proper sublattice of ``fine`` (``fine`` is finer)."""
    return bool(_indices(coarse, fine) >= 2)
