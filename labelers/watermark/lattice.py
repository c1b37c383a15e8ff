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
3. the strongest local maxima in the lag range where a tile period can be;
4. every pair of them that spans a plausible lattice (similar lengths, roughly
   perpendicular) is scored on four lattice points (``b1``, ``b2``,
   ``b1 + b2``, ``b1 - b2``); the best few pairs are kept;
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
        r - ndimage.uniform_filter1d(r, _PEAK_SMOOTH, axis=0, mode="wrap"),
        r - ndimage.uniform_filter1d(r, _PEAK_SMOOTH, axis=1, mode="wrap"),
    )
    return r / max(float(r[0, 0]), 1e-12)


def _sample(r: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Bilinear values of the circular ``r`` at lag vectors ``pts`` (n x 2: dy, dx)."""
    hh, ww = r.shape
    return ndimage.map_coordinates(r, [pts[:, 0] % hh, pts[:, 1] % ww], order=1, mode="grid-wrap")


def _points(a: np.ndarray, b: np.ndarray, reach: float) -> np.ndarray:
    """Lattice points n1 a + n2 b (half plane, |n| <= 2, not 0) within ``reach``."""
    pts = [n1 * a + n2 * b for n1 in range(-2, 3) for n2 in range(0, 3) if n2 > 0 or n1 > 0]
    near = [p for p in pts if np.hypot(*p) <= reach]
    return np.stack(near if len(near) >= 4 else [a, b, a + b, a - b])


def _overlap(pts: np.ndarray, hh: int, ww: int) -> np.ndarray:
    """Share of the image that overlaps itself at each lag: a longer lag sums fewer
    pixels, so its correlation is scaled back up before lags are compared."""
    return np.maximum((1 - np.abs(pts[:, 0]) / hh) * (1 - np.abs(pts[:, 1]) / ww), 0.05)


def _peak_at(r: np.ndarray, pt: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Sub-pixel position and height of the local maximum nearest ``pt``."""
    hh, ww = r.shape
    cy, cx = round(float(pt[0])), round(float(pt[1]))
    ys = np.arange(cy - 2, cy + 3) % hh
    xs = np.arange(cx - 2, cx + 3) % ww
    win = r[np.ix_(ys, xs)]
    k = int(np.argmax(win))
    iy, ix = divmod(k, 5)
    if not (0 < iy < 4 and 0 < ix < 4):
        return None  # the maximum is on the window's edge: no peak here
    pos = np.array([cy - 2 + iy, cx - 2 + ix], dtype=np.float64)
    for axis, (lo, mid, hi) in enumerate(
        (
            (win[iy - 1, ix], win[iy, ix], win[iy + 1, ix]),
            (win[iy, ix - 1], win[iy, ix], win[iy, ix + 1]),
        )
    ):
        den = lo - 2 * mid + hi
        if den < 0:
            pos[axis] += float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5))
    return pos, float(win[iy, ix])


def _refine(r: np.ndarray, basis: np.ndarray, reach: float) -> np.ndarray:
    """Least-squares lattice basis from the peaks near every lattice point in reach."""
    rows, targets, weights = [], [], []
    for n1 in range(-_REFINE_ORDER, _REFINE_ORDER + 1):
        for n2 in range(0, _REFINE_ORDER + 1):
            if n2 == 0 and n1 <= 0:
                continue  # half the lattice: r is symmetric
            pt = n1 * basis[0] + n2 * basis[1]
            if np.hypot(*pt) > reach:
                continue
            found = _peak_at(r, pt)
            if found is None or found[1] <= 0:
                continue
            pos, height = found
            if np.hypot(*(pos - pt)) > 1.5:
                continue
            rows.append((n1, n2))
            targets.append(pos)
            weights.append(height)
    if len(rows) < 3:
        return basis
    n = np.array(rows, dtype=np.float64)
    w = np.sqrt(np.array(weights))[:, None]
    fit, *_ = np.linalg.lstsq(n * w, np.array(targets) * w, rcond=None)
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
    is_max = win == ndimage.maximum_filter(win, size=5, mode="nearest")
    dy, dx = np.meshgrid(ys, xs, indexing="ij")
    radius = np.hypot(dy, dx)
    ok = is_max & (radius >= lo) & (radius <= hi) & (win > 0)
    ok &= ~((dx == 0) & (dy < 0))  # the other half of the dx = 0 column
    cand = np.flatnonzero(ok)
    if cand.size < 2:
        return []
    cand = cand[np.argsort(-win.flat[cand])][:_PEAKS]
    vecs = np.stack([dy.flat[cand], dx.flat[cand]], axis=1).astype(np.float64)
    vecs = np.concatenate([vecs, _partners(r, vecs[:_PARTNERS], lo, hi)])
    # each peak also stands for its mirror -v; pair v_i with +-v_j
    scored: list[tuple[float, np.ndarray]] = []
    for i in range(len(vecs)):
        for j in range(i + 1, len(vecs)):
            a, b = vecs[i], vecs[j]
            la, lb = np.hypot(*a), np.hypot(*b)
            if max(la, lb) > _MAX_ASPECT * min(la, lb):
                continue
            if abs(a[0] * b[1] - a[1] * b[0]) < _MIN_SINE * la * lb:
                continue
            pts = _points(a, b, reach)
            # every point of a true lattice peaks, a chance pair of content
            # peaks rarely has a third: a low quantile over the points decides
            vals = _sample(r, pts) / _overlap(pts, hh, ww)
            score = float(np.quantile(vals, _SCORE_QUANTILE))
            scored.append((score, np.stack([a, b])))
    scored.sort(key=lambda s: -s[0])
    out: list[np.ndarray] = []
    for score, basis in scored:
        # the pair itself, and the finer lattice it may be a sublattice of:
        # the sync score decides between them
        for option in (_finest(r, basis, score, lo), basis):
            if len(out) == tries:
                return out
            fit = _refine(r, option, reach)
            if not _plausible(fit, lo):
                continue  # a refit or a refinement can collapse to a line
            if not any(_same_lattice(fit, kept) for kept in out):
                out.append(fit)
    return out


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
    out = []
    for v in vecs:
        p = np.array([-v[1], v[0]])
        if p[1] < 0 or (p[1] == 0 and p[0] < 0):
            p = -p  # the half plane the peaks were taken from
        length = float(np.hypot(*v))
        t = np.linspace(1 / 1.36, 1.36, max(8, int(length * 0.7)))
        t = t[(t * length >= lo) & (t * length <= hi)]
        if t.size == 0:
            continue
        vals = _sample(r, t[:, None] * p[None, :])
        # as long as v (rotation, uniform scale), and the ray's strongest (a stretch)
        for guess in dict.fromkeys((1.0, float(t[int(np.argmax(vals))]))):
            cy, cx = np.round(guess * p).astype(int)
            ys, xs = np.arange(cy - 3, cy + 4), np.arange(cx - 3, cx + 4)
            box = r[np.ix_(ys % hh, xs % ww)]
            k = int(np.argmax(box))
            pos = np.array([ys[k // 7], xs[k % 7]], dtype=np.float64)
            if pos[1] < 0:
                pos = -pos  # the same lattice vector, in the half plane
            if box.flat[k] <= 0 or not lo <= np.hypot(*pos) <= hi:
                continue
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
        for v, k, other in steps:
            if np.hypot(*v) / k < lo:
                continue
            height = np.inf
            for j in range(1, k):
                found = _peak_at(r, v * j / k)
                if found is None or np.hypot(*(found[0] - v * j / k)) > 1.5:
                    height = -np.inf
                    break
                height = min(height, found[1] / _overlap(found[0][None, :], hh, ww)[0])
            if height >= best:
                best, finer = height, _reduced(np.stack([v / k, other]))
        if finer is None:
            return basis
        basis = finer
    return basis


def _same_lattice(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` is ``b`` up to a change of basis (within 4% of a period)."""
    coeffs = a @ np.linalg.inv(b)
    if not np.allclose(coeffs, np.round(coeffs), atol=0.04):
        return False
    return abs(abs(round(float(np.linalg.det(np.round(coeffs))))) - 1) == 0
