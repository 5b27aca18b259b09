"""Streaming accumulators: an incremental (TSQR) R factor and column moments.

Both hold O(p^2) numbers whatever the number of rows fed to them, and both merge across
ranks: stacking R factors and factorising again gives the R factor of all the rows
(Demmel et al., "Communication-optimal parallel and sequential QR", TSQR), and column
moments combine with Chan, Golub and LeVeque's pairwise update.
"""
import numpy as np


def r_factor(matrix):
    """Upper-triangular R (ncols x ncols, zero-padded) of a Householder QR of `matrix`."""
    rows, cols = matrix.shape
    out = np.zeros((cols, cols))
    if rows:
        r = np.linalg.qr(matrix, mode="r")
        out[: r.shape[0]] = r
    return out


class IncrementalQR:
    """R factor of a tall matrix whose rows arrive in blocks.

    After blocks A_1, ..., A_k, `R` satisfies R^T R = A^T A for A = [A_1; ...; A_k], computed
    by orthogonal transformations only: R_new = qr([R_old; A_i]).R. Never forms A^T A.
    """

    def __init__(self, ncols):
        self.ncols = int(ncols)
        self.R = np.zeros((self.ncols, self.ncols))
        self.rows = 0

    def add(self, block):
        block = np.asarray(block, dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != self.ncols:
            raise ValueError(f"block must have {self.ncols} columns, got shape {block.shape}")
        new_rows = block.shape[0]
        if not new_rows:
            return
        if self.rows:
            block = np.concatenate([self.R, block], axis=0)
        self.R = r_factor(block)
        self.rows += new_rows

    @staticmethod
    def combine(stacked_r, ncols):
        """R factor of several R factors stacked on top of each other (from all ranks)."""
        return r_factor(np.asarray(stacked_r, dtype=np.float64).reshape(-1, ncols))


class Moments:
    """Count, column means and centred sums of squares (M2), merged pairwise (Chan et al.)."""

    def __init__(self, ncols):
        self.n = 0.0
        self.mean = np.zeros(ncols)
        self.m2 = np.zeros(ncols)

    @classmethod
    def of(cls, block):
        block = np.asarray(block, dtype=np.float64)
        block = block.reshape(block.shape[0], -1)
        out = cls(block.shape[1])
        out.n = float(block.shape[0])
        if out.n:
            out.mean = block.mean(axis=0)
            out.m2 = ((block - out.mean) ** 2).sum(axis=0)
        return out

    def merge(self, other):
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mean, self.m2 = other.n, other.mean.copy(), other.m2.copy()
            return self
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.n / n)
        self.m2 = self.m2 + other.m2 + delta ** 2 * (self.n * other.n / n)
        self.n = n
        return self

    def add(self, block):
        return self.merge(Moments.of(block))

    def pack(self):
        return np.concatenate([[self.n], self.mean, self.m2])[None, :]

    @classmethod
    def unpack_all(cls, rows):
        """Merge the packed moments of several ranks (rows of `rows`), in rank order."""
        rows = np.asarray(rows, dtype=np.float64)
        k = (rows.shape[1] - 1) // 2
        total = cls(k)
        for row in rows:
            part = cls(k)
            part.n, part.mean, part.m2 = row[0], row[1:1 + k].copy(), row[1 + k:].copy()
            total.merge(part)
        return total

    @property
    def variance(self):
        return self.m2 / self.n if self.n else np.full_like(self.m2, np.nan)
