"""The sound concepts of synthworld: one parametric generator per concept, plus the mixer.

Each generator `make(rng, sr, n)` returns a mono float64 track of `n` samples at rate `sr` and
a dict of the attributes it drew (count, rate, pitch), which the caption grammar turns into
words. Tracks are normalised by `mix` so that their loudest 50 ms frame has unit RMS; gains are
then applied in dB. Every concept has its own spectro-temporal signature (tonal, noisy,
impulsive, modulated) so that a small log-mel CNN can tell them apart.

Only numpy is used: band-limited noise is shaped in the frequency domain and impulsive sounds
are impulse trains convolved with short kernels, which keeps a clip to a few FFTs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Rng = np.random.Generator
Attrs = dict[str, object]
F = np.float32  # long tracks are float32: half the memory traffic, twice as fast FFTs


def seconds(n: int, sr: int) -> np.ndarray:
    """The time of each of n samples, in seconds (float32)."""
    return np.arange(n, dtype=F) / F(sr)


# --- building blocks --------------------------------------------------------------------------


def _band(f: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """A smooth (2nd-order-like) band-pass magnitude response from lo to hi Hz."""
    r = (f / F(hi)) ** 2
    g = 1.0 / np.sqrt(1.0 + r * r)
    if lo > 0:
        r = (F(lo) / np.maximum(f, F(1e-3))) ** 2
        g = g / np.sqrt(1.0 + r * r)
    return g


def fast_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: FFTs of such sizes are fast, of large primes slow."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


Peaks = list[tuple[float, float]]  # resonances: (centre Hz, bandwidth Hz)


def _gain(size: int, sr: int, lo: float, hi: float, tilt: float, peaks: Peaks | None = None):
    """Magnitude response on the rfft bins of `size`, computed on a grid of at most 4097
    frequencies (about 5 Hz apart at 44.1 kHz, finer than any resonance here) and interpolated."""
    bins = size // 2 + 1
    if bins > 4097:
        coarse = _gain(8192, sr, lo, hi, tilt, peaks)
        return np.interp(np.linspace(0, 4096, bins), np.arange(4097), coarse).astype(F)
    f = np.fft.rfftfreq(size, 1.0 / sr).astype(F)
    g = _band(f, lo, min(hi, 0.45 * sr))
    if tilt:
        g = g * (np.maximum(f, F(20.0)) / F(1000.0)) ** F(tilt / 6.02)
    if peaks:
        g = g * sum(1.0 / (1.0 + ((f - F(c)) / F(b)) ** 2) for c, b in peaks)
    return g


def noise(
    rng: Rng,
    n: int,
    sr: int,
    lo: float = 20.0,
    hi: float = 20000.0,
    tilt: float = 0.0,
    peaks: Peaks | None = None,
) -> np.ndarray:
    """Gaussian noise band-limited to [lo, hi] Hz, tilted by `tilt` dB/octave, unit RMS.

    Drawn directly as a random spectrum: one inverse FFT, the unit of cost in this module.
    Low-passed noise is drawn at a lower rate and interpolated up (it has nothing up there).
    """
    down = 1
    while hi * 8 < sr / down and n // down > 4096:
        down *= 2
    if down > 1:
        low = noise(rng, n // down + 2, sr // down, lo, hi, tilt, peaks)
        return np.interp(np.arange(n) / down, np.arange(len(low)), low).astype(F)
    size = fast_len(n)
    m = size // 2 + 1
    spec = rng.standard_normal(2 * m, dtype=F).view(np.complex64)
    x = np.fft.irfft(spec * _gain(size, sr, lo, hi, tilt, peaks), size)[:n]
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _apply(x: np.ndarray, sr: int, gain: Callable[[int], np.ndarray]) -> np.ndarray:
    size = fast_len(len(x))
    return np.fft.irfft(np.fft.rfft(x, size) * gain(size), size)[: len(x)]


def filt(
    x: np.ndarray, sr: int, lo: float, hi: float, tilt: float = 0.0, peaks: Peaks | None = None
) -> np.ndarray:
    """Band-pass (tilt, add resonances to) an existing signal in the frequency domain."""
    size = fast_len(len(x))
    gain = _gain(size, sr, lo, hi, tilt, peaks)
    return np.fft.irfft(np.fft.rfft(x.astype(F), size) * gain, size)[: len(x)]


def scatter(n: int, where, kernel: np.ndarray, amps=1.0) -> np.ndarray:
    """A track of n samples with `kernel` added at each start in `where`, scaled by `amps`.

    Direct placement: cheaper than an FFT convolution for the sparse events used here.
    """
    where = np.asarray(where, dtype=np.int64)
    amps = np.broadcast_to(np.asarray(amps, dtype=F), where.shape)
    if len(where) * len(kernel) > 2 * n:
        # Dense events (rain, applause): an FFT convolution of the impulse train is cheaper.
        inside = (where >= 0) & (where < n)
        train = np.bincount(where[inside], amps[inside], minlength=n).astype(F)
        size = fast_len(n + len(kernel))
        spec = np.fft.rfft(train, size) * np.fft.rfft(kernel.astype(F), size)
        return np.fft.irfft(spec, size)[:n]
    idx = where[:, None] + np.arange(len(kernel))
    vals = amps[:, None] * kernel[None, :]
    keep = (idx >= 0) & (idx < n)
    return np.bincount(idx[keep], vals[keep], minlength=n)[:n].astype(F)


def control(rng: Rng, n: int, sr: int, rate: float, lo: float, hi: float) -> np.ndarray:
    """A random control signal wandering between lo and hi about `rate` times a second."""
    k = int(n / sr * rate) + 2
    return np.interp(np.linspace(0, k - 1, n), np.arange(k), rng.uniform(lo, hi, k)).astype(F)


TABLE = 4096


def wavetable(amps, top: float, sr: int) -> np.ndarray:
    """One period of sum_k amps[k-1] sin(k x), without partials above 0.45 sr at `top` Hz."""
    spec = np.zeros(TABLE // 2 + 1, np.complex128)
    for k, a in enumerate(amps, start=1):
        if k * top < 0.45 * sr and k < TABLE // 2:
            spec[k] = -0.5j * a * TABLE
    return np.fft.irfft(spec, TABLE).astype(F)


def play(table: np.ndarray, f0: np.ndarray, sr: int) -> np.ndarray:
    """Read a wavetable along the frequency track f0 (Hz per sample)."""
    index = (np.cumsum(f0, dtype=np.float64) * (TABLE / sr)).astype(np.int64) % TABLE
    return table[index]


def harmonic(sr: int, f0: np.ndarray, amps: list[float]) -> np.ndarray:
    """A harmonic tone following the frequency track f0 (Hz per sample); aliasing partials dropped.

    Read from a one-period wavetable: one lookup per sample whatever the number of partials.
    """
    return play(wavetable(amps, float(np.max(f0)), sr), f0, sr)


def decay(m: int, sr: int, tau: float, attack: float = 0.002) -> np.ndarray:
    """Exponential decay envelope with a short attack."""
    t = np.arange(m) / sr
    return (1.0 - np.exp(-t / attack)) * np.exp(-t / tau)


def ping(sr: int, freq: float, tau: float) -> np.ndarray:
    """A damped sinusoid (a struck resonance) lasting about 5 time constants."""
    m = max(int(5 * tau * sr), 8)
    return np.sin(2 * np.pi * freq * np.arange(m) / sr) * decay(m, sr, tau, 0.0005)


def burst(rng: Rng, sr: int, lo: float, hi: float, tau: float) -> np.ndarray:
    """A short decaying band of noise (a click, a scuff, a crack)."""
    m = max(int(5 * tau * sr), 16)
    return noise(rng, m, sr, lo, hi) * decay(m, sr, tau, 0.0005)


def add(track: np.ndarray, seg: np.ndarray, start: int) -> None:
    """Add `seg` into `track` at `start`, cutting what falls outside."""
    if start >= len(track) or start + len(seg) <= 0:
        return
    a = max(start, 0)
    b = min(start + len(seg), len(track))
    track[a:b] += seg[a - start : b - start]


@functools.lru_cache(maxsize=4096)
def hann(m: int) -> np.ndarray:
    """A Hann window of m samples (cached: many events share lengths; never modify it)."""
    w = (np.sin(np.pi * (np.arange(m) + 0.5) / m) ** 2).astype(F)
    w.flags.writeable = False
    return w


def schedule(rng: Rng, n: int, sr: int, count: int, length: float, gap: tuple[float, float]):
    """Start samples of `count` events of `length` s separated by gaps, placed inside the clip.

    Fewer events are returned when they cannot all fit.
    """
    gaps = rng.uniform(gap[0], gap[1], count)
    starts, t = [], 0.0
    for i in range(count):
        if t + length > n / sr:
            break
        starts.append(t)
        t += length + gaps[i]
    span = starts[-1] + length if starts else 0.0
    offset = rng.uniform(0.0, max(n / sr - span, 0.0))
    return [int((s + offset) * sr) for s in starts]


def poisson_times(rng: Rng, n: int, rate: float, sr: int, a: int = 0, b: int | None = None):
    """Sample indices of a Poisson process of `rate` events/s between samples a and b."""
    b = n if b is None else b
    count = rng.poisson(rate * (b - a) / sr)
    return np.sort(rng.integers(a, max(b, a + 1), count))


def _pitch(value: float, low: float, high: float) -> str | None:
    return "high" if value >= high else "low" if value <= low else None


def _rate(value: float, slow: float, fast: float) -> str | None:
    return "fast" if value >= fast else "slow" if value <= slow else None


# --- animals ----------------------------------------------------------------------------------


def dog_bark(rng: Rng, sr: int, n: int):
    count = int(rng.integers(1, 5))
    f0 = rng.uniform(300, 750)
    x = np.zeros(n, F)
    for s in schedule(rng, n, sr, count, 0.22, (0.15, 0.5)):
        m = int(rng.uniform(0.12, 0.22) * sr)
        t = np.arange(m) / m
        track = f0 * (1 + 0.3 * np.sin(np.pi * t)) * rng.uniform(0.95, 1.05)
        tone = harmonic(sr, track, [1, 0.8, 0.6, 0.45, 0.3, 0.2, 0.12])
        env = np.sin(np.pi * t) ** 0.4 * np.exp(-2.5 * t)
        add(x, (tone + 0.5 * noise(rng, m, sr, 400, 4000)) * env, s)
    return x, {"count": count, "pitch": _pitch(f0, 400, 620)}


def cat_meow(rng: Rng, sr: int, n: int):
    count = int(rng.integers(1, 3))
    f0 = rng.uniform(420, 650)
    x = np.zeros(n, F)
    for s in schedule(rng, n, sr, count, 1.0, (0.3, 0.8)):
        m = int(rng.uniform(0.55, 1.0) * sr)
        t = np.arange(m) / m
        track = f0 * (0.85 + 0.6 * np.sin(np.pi * t**0.8)) * (1 + 0.01 * np.sin(40 * t))
        env = np.clip(t / 0.15, 0, 1) * np.sin(np.pi * t) ** 0.6
        x_seg = harmonic(sr, track, [1, 0.7, 0.5, 0.35, 0.2, 0.1]) * env
        add(x, filt(x_seg, sr, 80, 20000, peaks=[(900, 300), (2200, 500)]), s)
    return x, {"count": count, "pitch": _pitch(f0, 460, 600)}


def bird_chirp(rng: Rng, sr: int, n: int):
    groups = int(rng.integers(1, 5))
    gap = rng.uniform(0.03, 0.12)
    f1, f2 = rng.uniform(2000, 4500), rng.uniform(3500, 7000)
    if rng.random() < 0.5:
        f1, f2 = f2, f1
    x = np.zeros(n, F)
    for s in schedule(rng, n, sr, groups, 0.6, (0.2, 0.8)):
        pos = s
        for _ in range(int(rng.integers(2, 7))):
            m = int(rng.uniform(0.04, 0.11) * sr)
            t = np.arange(m) / m
            seg = harmonic(sr, f1 + (f2 - f1) * t, [1, 0.2]) * hann(m)
            add(x, seg, pos)
            pos += m + int(gap * sr)
    return x, {"rate": _rate(1 / gap, 12, 22), "pitch": _pitch((f1 + f2) / 2, 3200, 5000)}


def crickets(rng: Rng, sr: int, n: int):
    x = np.zeros(n, F)
    chirp_rate = rng.uniform(1.2, 3.5)
    for voice in range(1 + int(rng.random() < 0.5)):
        carrier = np.sin(2 * np.pi * rng.uniform(3800, 5500) * seconds(n, sr))
        pulse_gap = 1 / rng.uniform(25, 45)
        starts = np.arange(rng.uniform(0, 0.4), n / sr, 1 / chirp_rate)
        hits = [c + k * pulse_gap for c in starts for k in range(int(rng.integers(3, 7)))]
        gate = scatter(n, np.array(hits) * sr, hann(int(0.012 * sr)))
        x += carrier * gate * (0.6 if voice else 1.0)
    return x, {"rate": _rate(chirp_rate, 1.6, 2.8)}


def baby_cry(rng: Rng, sr: int, n: int):
    f0 = rng.uniform(350, 600)
    x = np.zeros(n, F)
    for s in schedule(rng, n, sr, int(rng.integers(2, 6)), 1.0, (0.15, 0.4)):
        m = int(rng.uniform(0.5, 1.1) * sr)
        t = np.arange(m) / sr
        vib = 1 + 0.03 * np.sin(2 * np.pi * rng.uniform(6, 9) * t)
        track = f0 * vib * (1.1 - 0.25 * (t / t[-1]) ** 2)
        env = np.clip(t / 0.05, 0, 1) * np.clip((t[-1] - t) / 0.1, 0, 1)
        seg = harmonic(sr, track, [0.6, 1, 0.9, 0.7, 0.4, 0.3, 0.2, 0.1])
        add(x, (seg + 0.15 * noise(rng, m, sr, 1000, 5000)) * env, s)
    return x, {"pitch": _pitch(f0, 400, 540)}


# --- weather and water ------------------------------------------------------------------------


def rain(rng: Rng, sr: int, n: int):
    density = rng.uniform(60, 350)
    hiss = noise(rng, n, sr, 800, 12000, tilt=-2)
    drops = np.zeros(n, F)
    for _ in range(3):
        where = poisson_times(rng, n, density / 3, sr)
        amps = rng.lognormal(0, 0.6, len(where))
        drops += scatter(n, where, ping(sr, rng.uniform(1500, 6000), 0.004), amps)
    drops /= np.sqrt(np.mean(drops**2)) + 1e-12
    return 0.6 * hiss + drops, {"rate": _rate(density, 120, 250)}


def thunder(rng: Rng, sr: int, n: int):
    x = np.zeros(n, F)
    for s in schedule(rng, n, sr, int(rng.integers(1, 3)), 2.0, (0.2, 1.0)):
        m = n - s
        t = np.arange(m) / sr
        env = (1 - np.exp(-t / rng.uniform(0.05, 0.3))) * np.exp(-t / rng.uniform(0.8, 2.0))
        rumble = noise(rng, m, sr, 20, 250, tilt=-3) * env * control(rng, m, sr, 8, 0.4, 1.0)
        add(x, rumble, s)
        if rng.random() < 0.5:
            add(x, 0.8 * burst(rng, sr, 300, 6000, 0.08), s)
    if rng.random() < 0.5:
        x += 0.1 * noise(rng, n, sr, 1000, 10000, tilt=-2)
    return x, {}


def wind(rng: Rng, sr: int, n: int):
    gust = control(rng, n, sr, rng.uniform(0.5, 1.2), 0.15, 1.0) ** 1.5
    body = noise(rng, n, sr, 40, rng.uniform(400, 900), tilt=-3)
    whistle = noise(rng, n, sr, peaks=[(rng.uniform(500, 1200), 25)])
    strength = float(np.mean(gust))
    return (body + 0.25 * whistle) * gust, {"rate": _rate(strength, 0.3, 0.5)}


def water_stream(rng: Rng, sr: int, n: int):
    body = noise(rng, n, sr, 300, 4000, tilt=-1) * control(rng, n, sr, 35, 0.3, 1.0)
    bubbles = np.zeros(n, F)
    for _ in range(3):
        m = int(rng.uniform(0.01, 0.03) * sr)
        t = np.arange(m) / m
        f0 = rng.uniform(500, 1200)
        kernel = np.sin(2 * np.pi * np.cumsum(f0 * (1 + t)) / sr) * hann(m)
        bubbles += scatter(n, poisson_times(rng, n, rng.uniform(8, 20), sr), kernel)
    return body + 2.0 * bubbles, {}


def sea_waves(rng: Rng, sr: int, n: int):
    period = rng.uniform(4, 8)
    # The swell is computed at 100 Hz and interpolated: it changes slowly.
    k = int(n / sr * 100) + 2
    phase = ((np.arange(k) / 100 + rng.uniform(0, period)) % period) / period
    slow = 0.2 + np.where(phase < 0.3, phase / 0.3, np.exp(-(phase - 0.3) * 5)) ** 1.5
    swell = np.interp(np.arange(n) / sr * 100, np.arange(k), slow).astype(F)
    body = noise(rng, n, sr, 100, 8000, tilt=-2)
    foam = noise(rng, n, sr, 2000, 12000) * np.clip(swell - 0.6, 0, None)
    return body * swell + foam, {}


# --- people -----------------------------------------------------------------------------------

VOWELS = [
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (570, 840, 2410),
]


def _vowel(f0: float, sr: int, formant_hz: tuple[int, int, int]) -> np.ndarray:
    """The wavetable of a sung vowel: harmonics of f0 weighted by three formant resonances."""
    k = np.arange(1, int(min(5000.0, 0.4 * sr) / f0) + 1)
    f = k * f0
    amps = sum(1.0 / (1.0 + ((f - c) / (60 + 0.08 * c)) ** 2) for c in formant_hz) / np.sqrt(k)
    return wavetable(amps, f0 * 1.25, sr)


def _voice(rng: Rng, sr: int, n: int, f0: float, syllable: float, start: float, level: float):
    """Voiced syllables (a voice through vowel formants) with pauses between phrases."""
    x = np.zeros(n, F)
    vowels = [_vowel(f0, sr, v) for v in VOWELS]
    pos = int(start * sr)
    while pos < n - int(0.1 * sr):
        for _ in range(int(rng.integers(2, 7))):
            m = int(rng.uniform(0.6, 1.4) * syllable * sr)
            t = np.arange(m, dtype=F) / F(m)
            track = F(f0 * rng.uniform(0.85, 1.15)) * (1.08 - 0.16 * t)
            seg = play(vowels[int(rng.integers(0, len(vowels)))], track, sr) * hann(m)
            if rng.random() < 0.4:
                k = int(0.04 * sr)
                seg[:k] += 0.05 * noise(rng, k, sr, 3000, 8000) * hann(k)
            add(x, level * seg, pos)
            pos += m
        pos += int(rng.uniform(0.1, 0.45) * sr)
    return x


def speech_man(rng: Rng, sr: int, n: int):
    f0 = rng.uniform(90, 150)
    return _voice(rng, sr, n, f0, rng.uniform(0.15, 0.25), rng.uniform(0, 0.3), 1.0), {
        "pitch": _pitch(f0, 100, 140)
    }


def speech_woman(rng: Rng, sr: int, n: int):
    f0 = rng.uniform(180, 260)
    return _voice(rng, sr, n, f0, rng.uniform(0.13, 0.22), rng.uniform(0, 0.3), 1.0), {
        "pitch": _pitch(f0, 195, 245)
    }


def crowd_babble(rng: Rng, sr: int, n: int):
    x = np.zeros(n, F)
    # A few voices over speech-shaped noise: cheaper than many voices, and sounds as dense.
    x = 0.03 * noise(rng, n, sr, 200, 3000, tilt=-3) * control(rng, n, sr, 6, 0.5, 1.0)
    for _ in range(3):
        f0 = rng.uniform(90, 250)
        x += _voice(rng, sr, n, f0, rng.uniform(0.13, 0.25), rng.uniform(0, 1), rng.uniform(0.5, 1))
    return x, {}


def children(rng: Rng, sr: int, n: int):
    x = np.zeros(n, F)
    for _ in range(int(rng.integers(2, 4))):
        f0 = rng.uniform(260, 420)
        x += _voice(rng, sr, n, f0, rng.uniform(0.1, 0.18), rng.uniform(0, 1), rng.uniform(0.5, 1))
    for s in schedule(rng, n, sr, int(rng.integers(1, 4)), 0.5, (0.3, 1.5)):
        m = int(rng.uniform(0.3, 0.6) * sr)
        t = np.arange(m) / m
        track = rng.uniform(550, 800) * (1 + 0.3 * np.sin(np.pi * t))
        add(x, 3 * harmonic(sr, track, [1, 0.6, 0.3, 0.15]) * hann(m), s)
    return x, {}


def footsteps(rng: Rng, sr: int, n: int):
    rate = rng.uniform(1.3, 2.7)
    kernels = []
    for _ in range(2):
        thud = ping(sr, rng.uniform(60, 130), 0.025)
        scuff = burst(rng, sr, 300, 3500, 0.02)
        k = np.zeros(max(len(thud), len(scuff)))
        k[: len(thud)] += thud
        k[: len(scuff)] += 0.6 * scuff
        kernels.append(k)
    times = np.arange(rng.uniform(0, 0.4), n / sr, 1 / rate) + rng.normal(0, 0.015, 1)
    times = (times * sr).astype(int)
    amps = rng.uniform(0.7, 1.0, len(times))
    x = scatter(n, times[0::2], kernels[0], amps[0::2])
    x += scatter(n, times[1::2], kernels[1], amps[1::2])
    return x, {"rate": _rate(rate, 1.6, 2.2)}


def applause(rng: Rng, sr: int, n: int):
    density = rng.uniform(40, 150)
    where = poisson_times(rng, n, density, sr)
    x = scatter(n, where, burst(rng, sr, 800, 5000, 0.006), rng.uniform(0.3, 1.0, len(where)))
    t = np.arange(n, dtype=F) / n
    return x * np.clip(t / 0.1, 0, 1) * np.clip((1 - t) / 0.2, 0, 1), {
        "rate": _rate(density, 70, 120)
    }


# --- household and office --------------------------------------------------------------------


def door_knock(rng: Rng, sr: int, n: int):
    f = rng.uniform(150, 320)
    kernel = ping(sr, f, 0.03)
    overtone = ping(sr, 2.7 * f, 0.015)
    kernel[: len(overtone)] += 0.6 * overtone
    knock = burst(rng, sr, 100, 2000, 0.006)
    kernel[: len(knock)] += 0.4 * knock
    count = int(rng.integers(2, 6))
    gap = 1 / rng.uniform(4, 7)
    x = np.zeros(n, F)
    for s in schedule(rng, n, sr, int(rng.integers(1, 3)), count * gap, (0.8, 1.5)):
        where = s + (np.arange(count) * gap * sr).astype(int)
        x += scatter(n, where, kernel, rng.uniform(0.7, 1.0, count))
    return x, {"count": count}


def keyboard(rng: Rng, sr: int, n: int):
    rate = rng.uniform(5, 12)
    x = np.zeros(n, F)
    for _ in range(3):
        kernel = burst(rng, sr, 1500, 9000, 0.006)
        click = ping(sr, rng.uniform(1500, 3500), 0.004)
        kernel[: len(click)] += 0.5 * click
        x += scatter(n, poisson_times(rng, n, rate / 3, sr), kernel)
    space = burst(rng, sr, 400, 4000, 0.015)
    x += scatter(n, poisson_times(rng, n, rate * 0.1, sr), space, 1.5)
    return x, {"rate": _rate(rate, 6.5, 10)}


def vacuum(rng: Rng, sr: int, n: int):
    f0 = rng.uniform(700, 1600)
    ramp = np.clip(seconds(n, sr) / 0.5, 0.3, 1.0) if rng.random() < 0.5 else np.ones(n, F)
    body = noise(rng, n, sr, 300, 9000, tilt=-1)
    whine = harmonic(sr, f0 * ramp, [0.5, 0.25, 0.12])
    sway = 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.4, 1.0) * seconds(n, sr))
    return (body * ramp + whine) * sway, {"pitch": _pitch(f0, 900, 1350)}


def clock_tick(rng: Rng, sr: int, n: int):
    rate = float(rng.choice([1.0, 2.0, 4.0]))
    tick, tock = ping(sr, rng.uniform(3000, 4200), 0.004), ping(sr, rng.uniform(2000, 3000), 0.004)
    times = (np.arange(rng.uniform(0, 1 / rate), n / sr, 1 / rate) * sr).astype(int)
    x = scatter(n, times[0::2], tick) + scatter(n, times[1::2], tock)
    return x, {"rate": _rate(rate, 1.0, 4.0)}


def glass_break(rng: Rng, sr: int, n: int):
    x = np.zeros(n, F)
    s = int(rng.uniform(0, max(n / sr - 1.2, 0.01)) * sr)
    add(x, burst(rng, sr, 500, 10000, 0.015), s)
    span = rng.uniform(0.3, 1.0)
    tinkle = np.zeros(n, F)
    for _ in range(3):
        k = int(rng.integers(5, 14))
        where = s + (span * sr * rng.random(k) ** 2).astype(int)
        kernel = ping(sr, rng.uniform(3000, 9000), rng.uniform(0.02, 0.08))
        tinkle += scatter(n, where, kernel, rng.uniform(0.2, 0.7, k))
    return x + tinkle, {}


def church_bell(rng: Rng, sr: int, n: int):
    f = rng.uniform(180, 520)
    count = int(rng.integers(1, 5))
    period = rng.uniform(0.8, 1.6)
    ratios = [0.5, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0]
    amps = [0.6, 1.0, 0.6, 0.5, 0.5, 0.3, 0.2]
    taus = [3.0, 2.5, 1.8, 1.5, 1.0, 0.8, 0.6]
    # One strike rendered once (at most 3 s: it has decayed by then), added at each stroke.
    t = np.arange(min(n, int(3 * sr))) / sr
    strike = sum(
        a * np.sin(2 * np.pi * r * f * t) * np.exp(-t / (tau * rng.uniform(0.4, 0.8)))
        for r, a, tau in zip(ratios, amps, taus, strict=True)
        if r * f < 0.45 * sr
    )
    x = np.zeros(n, F)
    for s in schedule(rng, n, sr, count, period, (0.0, 0.1)):
        add(x, strike * rng.uniform(0.8, 1.0), s)
    return x, {"count": count, "pitch": _pitch(f, 260, 420)}


def dishes(rng: Rng, sr: int, n: int):
    x = np.zeros(n, F)
    rate = rng.uniform(1, 4)
    for _ in range(3):
        f = rng.uniform(2000, 6000)
        tau = rng.uniform(0.05, 0.2)
        kernel = ping(sr, f, tau)
        overtone = ping(sr, f * rng.uniform(1.3, 2.7), tau / 2)
        kernel[: len(overtone)] += 0.5 * overtone
        where = poisson_times(rng, n, rate / 3, sr)
        x += scatter(n, where, kernel, rng.uniform(0.3, 1.0, len(where)))
    return x, {"rate": _rate(rate, 1.5, 3.0)}


# --- machines and vehicles --------------------------------------------------------------------


def ac_hum(rng: Rng, sr: int, n: int):
    mains = float(rng.choice([50.0, 60.0]))
    t = seconds(n, sr)
    hum = sum(a * np.sin(2 * np.pi * k * mains * t) for k, a in [(1, 0.3), (2, 1.0), (3, 0.4)])
    fan = noise(rng, n, sr, 60, 1200, tilt=-3)
    blade = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 500) * t)
    return 0.5 * hum + fan + blade, {"pitch": "low" if mains == 50.0 else None}


def car_horn(rng: Rng, sr: int, n: int):
    f1 = rng.uniform(330, 480)
    count = int(rng.integers(1, 4))
    x = np.zeros(n, F)
    for s in schedule(rng, n, sr, count, 0.9, (0.1, 0.4)):
        m = int(rng.uniform(0.25, 0.9) * sr)
        env = np.clip(np.arange(m) / (0.01 * sr), 0, 1) * np.clip(
            (m - np.arange(m)) / (0.02 * sr), 0, 1
        )
        amps = [1, 0.2, 0.5, 0.15, 0.3, 0.1, 0.2]
        tone = harmonic(sr, np.full(m, f1), amps) + harmonic(sr, np.full(m, f1 * 1.26), amps)
        add(x, tone * env, s)
    return x, {"count": count, "pitch": _pitch(f1, 360, 450)}


def drill(rng: Rng, sr: int, n: int):
    f0 = rng.uniform(180, 420)
    x = np.zeros(n, F)
    for s in schedule(rng, n, sr, int(rng.integers(1, 4)), 1.6, (0.2, 0.6)):
        m = int(rng.uniform(0.8, 2.5) * sr)
        t = np.arange(m) / sr
        track = f0 * (0.6 + 0.4 * np.clip(t / 0.2, 0, 1)) * (1 + 0.01 * np.sin(2 * np.pi * 7 * t))
        tone = harmonic(sr, track, [1, 0.8, 0.7, 0.6, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2])
        env = np.clip(t / 0.05, 0, 1) * np.clip((t[-1] - t) / 0.05, 0, 1)
        add(x, (tone + 0.6 * noise(rng, m, sr, 2000, 7000)) * env, s)
    return x, {"pitch": _pitch(f0, 230, 360)}


def jackhammer(rng: Rng, sr: int, n: int):
    rate = rng.uniform(12, 25)
    kernel = burst(rng, sr, 800, 6000, 0.008)
    thud = ping(sr, rng.uniform(60, 120), 0.02)
    kernel = np.pad(kernel, (0, max(len(thud) - len(kernel), 0)))
    kernel[: len(thud)] += 0.7 * thud
    hits = []
    for s in schedule(rng, n, sr, int(rng.integers(1, 4)), 1.6, (0.2, 0.7)):
        m = int(rng.uniform(0.8, 2.5) * sr)
        hits.append(s + (np.arange(0, m / sr, 1 / rate) * sr).astype(int))
    where = np.concatenate(hits) if hits else np.zeros(0, dtype=int)
    return scatter(n, where, kernel, rng.uniform(0.8, 1.0, len(where))), {
        "rate": _rate(rate, 15, 21)
    }


def engine_idle(rng: Rng, sr: int, n: int):
    rate = rng.uniform(18, 40)
    drift = control(rng, n, sr, 0.5, 0.97, 1.03)
    ph = np.cumsum(rate * drift) / sr
    fire = np.diff(np.floor(ph), prepend=0.0) * rng.uniform(0.8, 1.0)
    body = filt(fire, sr, 25, 900, peaks=[(rng.uniform(90, 250), 60), (rng.uniform(400, 700), 150)])
    body /= np.sqrt(np.mean(body**2)) + 1e-12
    return body + 0.3 * noise(rng, n, sr, 20, 400, tilt=-3), {
        "rate": _rate(rate, 22, 34),
        "pitch": _pitch(rate, 22, 34),
    }


def gunshot(rng: Rng, sr: int, n: int):
    count = int(rng.integers(1, 4))
    shot_len = int(0.6 * sr)
    crack = burst(rng, sr, 100, 8000, rng.uniform(0.02, 0.05))
    boom = ping(sr, rng.uniform(50, 90), 0.08)
    shot = np.zeros(shot_len)
    add(shot, crack, 0)
    add(shot, 0.8 * boom, 0)
    delay = int(rng.uniform(0.1, 0.25) * sr)
    add(shot, 0.3 * filt(shot[: shot_len - delay].copy(), sr, 50, 2000), delay)
    x = np.zeros(n, F)
    for s in schedule(rng, n, sr, count, 0.6, (0.0, 1.0)):
        add(x, shot * rng.uniform(0.8, 1.0), s)
    return x, {"count": count}


def helicopter(rng: Rng, sr: int, n: int):
    rate = rng.uniform(10, 22)
    where = (np.arange(rng.uniform(0, 0.05), n / sr, 1 / rate) * sr).astype(int)
    slaps = scatter(n, where, burst(rng, sr, 100, 2000, rng.uniform(0.012, 0.025)))
    slaps /= np.sqrt(np.mean(slaps**2)) + 1e-12
    t = seconds(n, sr)
    whine = 0.1 * np.sin(2 * np.pi * rng.uniform(1000, 3000) * t)
    body = slaps + 0.3 * noise(rng, n, sr, 30, 500, tilt=-3) + whine
    swell = np.linspace(*(rng.uniform(0.4, 1.0, 2)), n, dtype=F)
    return body * swell, {"rate": _rate(rate, 13, 18)}


def siren(rng: Rng, sr: int, n: int):
    centre, depth = rng.uniform(700, 1100), rng.uniform(0.2, 0.35)
    yelp = rng.random() < 0.4
    period = rng.uniform(0.2, 0.45) if yelp else rng.uniform(1.8, 4.0)
    t = seconds(n, sr)
    if yelp:
        wave = 2 * ((t / period + rng.random()) % 1) - 1  # fast saw sweeps
    else:
        wave = np.sin(2 * np.pi * (t / period + rng.random()))
    tone = harmonic(sr, centre * (1 + depth * wave), [1, 0.5, 0.3, 0.2, 0.1])
    return tone * np.linspace(*(rng.uniform(0.5, 1.0, 2)), n, dtype=F), {
        "rate": "fast" if yelp else "slow",
        "pitch": _pitch(centre, 800, 1000),
    }


def traffic(rng: Rng, sr: int, n: int):
    t = seconds(n, sr)
    passes = np.full(n, 0.3, F)
    for _ in range(int(rng.integers(1, 5))):
        c, w = rng.uniform(0, n / sr), rng.uniform(0.6, 1.5)
        passes += rng.uniform(0.5, 1.0) * np.exp(-(((t - c) / w) ** 2))
    engines = noise(rng, n, sr, 40, 1500, tilt=-4)
    tyres = noise(rng, n, sr, 500, 5000, tilt=-1)
    return (engines + 0.4 * tyres) * passes, {}


def music(rng: Rng, sr: int, n: int):
    root = rng.uniform(180, 360)
    scale = [0, 2, 4, 7, 9, 12, 14, 16]
    note_len = rng.uniform(0.15, 0.4)
    amps = [1, 0.5, 0.33, 0.25, 0.2, 0.12] if rng.random() < 0.5 else [1, 0.1, 0.3, 0.05, 0.15]
    x = np.zeros(n, F)
    m = int(note_len * sr)
    env = decay(m, sr, note_len * 0.6, 0.005)
    bass_env = decay(4 * m, sr, note_len * 1.5, 0.005)
    for i, pos in enumerate(range(int(rng.uniform(0, 0.2) * sr), n, m)):
        step = scale[int(rng.integers(0, len(scale)))]
        add(x, harmonic(sr, np.full(m, root * 2 ** (step / 12)), amps) * env, pos)
        if i % 4 == 0:
            bass = root / 2 * 2 ** (scale[int(rng.integers(0, 4))] / 12)
            add(x, 0.8 * harmonic(sr, np.full(4 * m, bass), [1, 0.4, 0.2]) * bass_env, pos)
    return x, {"rate": _rate(1 / note_len, 3.2, 5), "pitch": _pitch(root, 220, 300)}


# --- the registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Concept:
    name: str
    make: Callable[[Rng, int, int], tuple[np.ndarray, Attrs]]
    texture: bool  # fills the whole clip (can be a background) rather than discrete events


CONCEPTS: dict[str, Concept] = {
    c.name: c
    for c in [
        Concept("dog_bark", dog_bark, False),
        Concept("cat_meow", cat_meow, False),
        Concept("bird_chirp", bird_chirp, False),
        Concept("crickets", crickets, True),
        Concept("baby_cry", baby_cry, False),
        Concept("rain", rain, True),
        Concept("thunder", thunder, False),
        Concept("wind", wind, True),
        Concept("water_stream", water_stream, True),
        Concept("sea_waves", sea_waves, True),
        Concept("speech_man", speech_man, True),
        Concept("speech_woman", speech_woman, True),
        Concept("crowd_babble", crowd_babble, True),
        Concept("children", children, True),
        Concept("footsteps", footsteps, True),
        Concept("applause", applause, True),
        Concept("door_knock", door_knock, False),
        Concept("keyboard", keyboard, True),
        Concept("vacuum", vacuum, True),
        Concept("clock_tick", clock_tick, True),
        Concept("glass_break", glass_break, False),
        Concept("church_bell", church_bell, False),
        Concept("dishes", dishes, True),
        Concept("ac_hum", ac_hum, True),
        Concept("car_horn", car_horn, False),
        Concept("drill", drill, False),
        Concept("jackhammer", jackhammer, False),
        Concept("engine_idle", engine_idle, True),
        Concept("gunshot", gunshot, False),
        Concept("helicopter", helicopter, True),
        Concept("siren", siren, True),
        Concept("traffic", traffic, True),
        Concept("music", music, True),
    ]
}


# --- mixing -----------------------------------------------------------------------------------


@dataclass
class Source:
    """One concept placed in a clip: what the captions may say about it."""

    concept: str
    gain_db: float
    distant: bool = False
    background: bool = False
    attrs: Attrs | None = None


def _loudest(x: np.ndarray, sr: int) -> float:
    """RMS of the loudest 50 ms frame (tracks are normalised by it)."""
    frame = max(int(0.05 * sr), 1)
    k = len(x) // frame
    if k == 0:
        return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    return float(np.sqrt((x[: k * frame].reshape(k, frame) ** 2).mean(axis=1).max()))


@functools.lru_cache(maxsize=1)
def _floor_bank() -> np.ndarray:
    """A minute of unit white noise at most rates, drawn once from a fixed seed."""
    return np.random.default_rng(20261126).standard_normal(60 * 48000, dtype=F)


def mix(rng: Rng, sr: int, n: int, sources: list[Source], channels: int = 1) -> np.ndarray:
    """Render `sources` into an (n, channels) float32 clip; fills in each source's attrs.

    Each track is normalised (loudest 50 ms frame at unit RMS), then set to its gain.
    Distant sources are low-passed; stereo pans each source, and shifts texture sources in
    time on the right channel so backgrounds are decorrelated between the ears.
    """
    out = np.zeros((channels, n), F)
    for src in sources:
        track, src.attrs = CONCEPTS[src.concept].make(rng, sr, n)
        track = np.asarray(track, dtype=F)
        if src.distant:
            track = filt(track, sr, 20, rng.uniform(1500, 3000))
        level = _loudest(track, sr)
        if level < 1e-9:
            continue
        gain = 10 ** (src.gain_db / 20) / level
        if channels == 1:
            out[0] += F(gain) * track
            continue
        pan = rng.uniform(0.15, 0.85)
        right = np.roll(track, int(rng.integers(1, n))) if CONCEPTS[src.concept].texture else track
        out[0] += F(gain * np.cos(pan * np.pi / 2) * np.sqrt(2)) * track
        out[1] += F(gain * np.sin(pan * np.pi / 2) * np.sqrt(2)) * right
    # A faint white floor (real recordings are never digitally silent), cut from a fixed bank.
    floor = _floor_bank()
    level = F(10 ** (rng.uniform(-66, -54) / 20))
    for c in range(channels):
        start = int(rng.integers(0, len(floor) - n)) if len(floor) > n else 0
        out[c, : len(floor)] += level * floor[start : start + n]
    peak = float(np.abs(out).max())
    if peak > 0.95:  # limit, never clip
        out *= F(0.95 / peak)
    return np.ascontiguousarray(out.T)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * F(32767.0)), -32768, 32767).astype(np.int16)
