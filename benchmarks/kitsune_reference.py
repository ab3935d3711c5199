"""A straightforward per-packet, pure-Python extractor: the yardstick for FeatureExtractor.

One object per stream, a loop over the five λ at every packet, no pruning: the way AfterImage
is written, with the definitions of :mod:`fedcl.traffic._extractor`. Tests check the fast
extractor against it (tests/traffic/test_traffic_statistics.py); benchmarks/feature_extraction.py
measures the speed-up over it. Support code for tests and benchmarks, not part of the package.
"""

from __future__ import annotations

import math

from fedcl.traffic import LAMBDAS, VAR_RTOL, Packet

__all__ = ["ReferenceExtractor"]


class _Stat:
    """Damped weight, linear sum and square sum of one stream, for every λ."""

    __slots__ = ("t", "w", "ls", "ss")

    def __init__(self):
        self.t = None
        self.w = [0.0] * len(LAMBDAS)
        self.ls = [0.0] * len(LAMBDAS)
        self.ss = [0.0] * len(LAMBDAS)

    def insert(self, t: float, v: float) -> None:
        for k, lam in enumerate(LAMBDAS):
            f = 2.0 ** (-lam * (t - self.t)) if self.t is not None else 1.0
            self.w[k] = self.w[k] * f + 1.0
            self.ls[k] = self.ls[k] * f + v
            self.ss[k] = self.ss[k] * f + v * v
        self.t = t

    def mean(self, k: int) -> float:
        return self.ls[k] / self.w[k] if self.w[k] > 0 else 0.0

    def var(self, k: int) -> float:
        if self.w[k] <= 0:
            return 0.0
        mean = self.ls[k] / self.w[k]
        second = self.ss[k] / self.w[k]
        var = second - mean * mean
        return var if var > VAR_RTOL * second else 0.0

    def weight_at(self, k: int, t: float) -> float:
        return self.w[k] * 2.0 ** (-LAMBDAS[k] * (t - self.t)) if self.t is not None else 0.0

    def one_d(self) -> list[float]:
        row = []
        for k in range(len(LAMBDAS)):
            row += [self.w[k], self.mean(k), self.var(k)]
        return row


class _Directed:
    """One direction of a channel or socket pair: its sizes, gaps and last residuals."""

    __slots__ = ("size", "jit", "res")

    def __init__(self):
        self.size = _Stat()
        self.jit = _Stat()
        self.res = [0.0] * len(LAMBDAS)


class ReferenceExtractor:
    """Per-packet pure-Python version of :class:`FeatureExtractor` (no pruning)."""

    def __init__(self, first_jitter_from_epoch: bool = False):
        self.first_jitter_from_epoch = first_jitter_from_epoch
        self._mi, self._h, self._ch, self._sk, self._pairs = {}, {}, {}, {}, {}
        self._clock = -math.inf

    def extract(self, packets) -> list[list[float]]:
        return [self.update(p) for p in packets]

    def update(self, p: Packet) -> list[float]:
        t = self._clock = max(p.timestamp, self._clock)
        x = float(p.size)
        row = []
        for table, key in ((self._mi, (p.src_mac, p.src_ip)), (self._h, p.src_ip)):
            stat = table.get(key) or table.setdefault(key, _Stat())
            stat.insert(t, x)
            row += stat.one_d()
        hh, a = self._two_d("HH", self._ch, p.src_ip, p.dst_ip, t, x, jitter=True)
        hphp, _ = self._two_d("HpHp", self._sk, (p.src_ip, p.src_port), (p.dst_ip, p.dst_port), t, x, jitter=False)
        return row + hh + a.jit.one_d() + hphp

    def _two_d(self, kind, table, src, dst, t, x, jitter):
        a = table.get((src, dst))
        if a is None:
            a = table[(src, dst)] = _Directed()
            if jitter and self.first_jitter_from_epoch:
                a.jit.insert(t, t)  # the original: first gap measured from time zero
        elif jitter:
            a.jit.insert(t, t - a.size.t)
        b = table.get((dst, src)) if src != dst else None
        a.size.insert(t, x)
        pair_key = (kind, (src, dst) if src <= dst else (dst, src))
        pair = self._pairs.get(pair_key)
        if pair is None:
            pair = self._pairs[pair_key] = [t, [0.0] * len(LAMBDAS)]
        row = []
        for k, lam in enumerate(LAMBDAS):
            r = x - a.size.mean(k)
            rho = b.res[k] if b is not None else 0.0
            pair[1][k] = pair[1][k] * 2.0 ** (-lam * (t - pair[0])) + r * rho
            a.res[k] = r
            w_a, mu_a, var_a = a.size.w[k], a.size.mean(k), a.size.var(k)
            if b is not None:
                w_b, mu_b, var_b = b.size.weight_at(k, t), b.size.mean(k), b.size.var(k)
            else:
                w_b = mu_b = var_b = 0.0
            cov = pair[1][k] / (w_a + w_b)
            sd = math.sqrt(var_a) * math.sqrt(var_b)
            row += [w_a, mu_a, math.sqrt(var_a), math.sqrt(mu_a**2 + mu_b**2), math.sqrt(var_a**2 + var_b**2),
                    cov, cov / sd if sd > 0 else 0.0]
        pair[0] = t
        return row, a
