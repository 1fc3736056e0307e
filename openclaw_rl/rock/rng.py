"""Counter-based random numbers: a draw is a pure function of (key, counter).

Every market gets its own 64-bit key; the numbers of its episode ``e`` are the SplitMix64
hashes of ``(key, e, draw index)``. Generation is one vectorized uint64 expression over all
markets at once, and market ``i``'s numbers never depend on how many markets share the
batch or in which order they reset: a batch of N markets seeded ``s, s+1, ...`` produces the
same paths as N single markets. The whole RNG state of a market is (key, episode).
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_TO_UNIT = 2.0**-32
# uint64 multiplications wrap modulo 2^64 by design (they are hashes).


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer: a bijective avalanche hash of uint64 values (in place on ``z``)."""
    tmp = np.right_shift(z, _S30)
    z ^= tmp
    z *= _M1
    np.right_shift(z, _S27, out=tmp)
    z ^= tmp
    z *= _M2
    np.right_shift(z, _S31, out=tmp)
    z ^= tmp
    return z


def seed_keys(seeds) -> np.ndarray:
    """Keys for integer seeds (any shape, non-negative ints)."""
    seeds = np.asarray(seeds)
    if seeds.dtype.kind not in "iu" or np.any(seeds < 0):
        raise ValueError(f"seeds must be non-negative integers, got {seeds!r}")
    return mix64(np.atleast_1d(seeds).astype(np.uint64) ^ np.uint64(0x5851F42D4C957F2D))


def entropy_keys(n: int) -> np.ndarray:
    """Fresh unpredictable keys for unseeded markets."""
    return np.random.default_rng().integers(0, 2**64, size=n, dtype=np.uint64)


def episode_keys(keys: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    """The key of episode ``episodes[i]`` of market ``keys[i]``."""
    return mix64(keys ^ mix64(episodes.astype(np.uint64) * _GOLDEN + _GOLDEN))


def next_episode(keys: np.ndarray, episodes: np.ndarray, rows: np.ndarray, seeds: np.ndarray | None) -> np.ndarray:
    """Start the next episode of markets ``rows`` in place (``seeds`` reseeds them: episode 0) and return
    its keys."""
    if seeds is not None:
        keys[rows] = seed_keys(seeds)
        episodes[rows] = 0
    else:
        episodes[rows] += np.uint64(1)
    return episode_keys(keys[rows], episodes[rows])


def substream(keys: np.ndarray, stream: int) -> np.ndarray:
    """Independent keys for the ``stream``-th kind of draw of the same episode."""
    return mix64(keys + np.uint64(((stream + 1) * int(_M1)) % 2**64))


def uniform(keys: np.ndarray, n: int) -> np.ndarray:
    """Time-major ``[n, len(keys)]`` float64 uniforms in the open interval (0, 1).

    Each 64-bit hash yields two 32-bit uniforms (resolution 2^-32, ends excluded).
    """
    m = (n + 1) // 2
    counters = np.arange(1, m + 1, dtype=np.uint64) * _GOLDEN
    bits = mix64(counters[:, None] + keys[None, :])
    out = np.empty((2 * m, len(keys)))
    # Both halves fit in int64, whose conversion to float64 vectorizes (uint64's does not).
    np.multiply((bits >> _S32).view(np.int64), _TO_UNIT, out=out[:m])
    bits &= _LOW32
    np.multiply(bits.view(np.int64), _TO_UNIT, out=out[m:])
    out += 0.5 * _TO_UNIT
    return out[:n]


def normal(keys: np.ndarray, n: int) -> np.ndarray:
    """Time-major ``[n, len(keys)]`` standard normals (Box-Muller on counter uniforms).

    The radius is float64 (|z| reaches 6.7 sigma at the 2^-32 uniform resolution); the angle's
    cos/sin run in float32, whose SIMD kernels are several times faster than float64's.
    """
    half = (n + 1) // 2
    u = uniform(keys, 2 * half)
    radius = np.sqrt(-2.0 * np.log(u[:half]))
    angle = (2.0 * np.pi * u[half:]).astype(np.float32)
    out = np.empty((2 * half, len(keys)))
    np.multiply(radius, np.cos(angle), out=out[:half])
    np.multiply(radius, np.sin(angle), out=out[half:])
    return out[:n]


def student_t(keys: np.ndarray, n: int, nu: float) -> np.ndarray:
    """Time-major ``[n, len(keys)]`` Student-t variates with ``nu`` degrees of freedom.

    Bailey's Box-Muller analogue: with U, V uniform, sqrt(nu (U^(-2/nu) - 1)) cos(2 pi V) is
    exactly t(nu) (the marginal of a spherical bivariate t); no rejection, any real nu > 0.
    """
    u = uniform(keys, 2 * n)
    radius = np.sqrt(nu * (u[:n] ** (-2.0 / nu) - 1.0))
    return radius * np.cos((2.0 * np.pi * u[n:]).astype(np.float32))
