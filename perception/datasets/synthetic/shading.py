"""Per-pixel work of the synthetic cameras and per-point ground lookups, compiled with Numba (cached on disk, in a
folder per state of the generator's sources: the kernels read layout's constants, which Numba's own cache check
would not see change).

Scalar helpers (``frenet_at``, ``paint_at``, ``ground_rgb``) are shared by the camera kernel and the array
functions the LiDAR uses, so lane paint reads the same for both sensors.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from perception.datasets.synthetic.layout import LANE_WIDTH_M, Material
from perception.kernel_cache import cached_kernel, kernel_cache_dir

KERNEL_CACHE_DIR = kernel_cache_dir(Path(__file__).parent)

NO_PAINT, WHITE_PAINT, YELLOW_PAINT = 0, 1, 2
GROUND, BUILDING = Material.GROUND, Material.BUILDING
OFF_GRID_D = 1.0e4
"""d [m] reported for points outside the Frenet grid (far from the road: grass)."""

ASPHALT = (0.28, 0.28, 0.29)
GRASS = (0.32, 0.42, 0.22)
WHITE = (0.92, 0.92, 0.9)
YELLOW = (0.9, 0.75, 0.2)
WINDOW = (0.18, 0.22, 0.28)
SKY_HORIZON = (0.78, 0.84, 0.9)
SKY_ZENITH = (0.33, 0.52, 0.82)
AMBIENT = 0.45
HAZE_DISTANCE_M = 350.0
NOISE_LEVELS = 2
"""Each 8-bit channel gets integer noise uniform in [-NOISE_LEVELS, NOISE_LEVELS]."""


@cached_kernel(KERNEL_CACHE_DIR)
def frenet_at(table, origin_x, origin_y, resolution, x, y):
    """(s, d) [m] at global (x, y) by bilinear interpolation of ``table`` (H, W, 2) whose cell (0, 0) is at
    (origin_x, origin_y) with ``resolution`` [m]; (0, OFF_GRID_D) off the grid."""
    u = (x - origin_x) / resolution
    v = (y - origin_y) / resolution
    i0 = int(math.floor(u))
    j0 = int(math.floor(v))
    if i0 < 0 or j0 < 0 or i0 + 1 >= table.shape[1] or j0 + 1 >= table.shape[0]:
        return 0.0, OFF_GRID_D
    fu = u - i0
    fv = v - j0
    w00, w01, w10, w11 = (1.0 - fu) * (1.0 - fv), fu * (1.0 - fv), (1.0 - fu) * fv, fu * fv
    s = (w00 * table[j0, i0, 0] + w01 * table[j0, i0 + 1, 0]
         + w10 * table[j0 + 1, i0, 0] + w11 * table[j0 + 1, i0 + 1, 0])
    d = (w00 * table[j0, i0, 1] + w01 * table[j0, i0 + 1, 1]
         + w10 * table[j0 + 1, i0, 1] + w11 * table[j0 + 1, i0 + 1, 1])
    return s, d


@cached_kernel(KERNEL_CACHE_DIR)
def paint_at(s, d, lanes_per_direction, road_length):
    """Lane paint at Frenet (s, d): a double yellow centre line, dashed white lane dividers (3 m dash, 6 m gap)
    and solid white edge lines; NO_PAINT, WHITE_PAINT or YELLOW_PAINT."""
    if s < 0.0 or s > road_length:
        return NO_PAINT
    a = abs(d)
    if abs(a - 0.15) < 0.06:
        return YELLOW_PAINT
    if abs(a - lanes_per_direction * LANE_WIDTH_M) < 0.1:
        return WHITE_PAINT
    for k in range(1, lanes_per_direction):
        if abs(a - k * LANE_WIDTH_M) < 0.075 and s % 9.0 < 3.0:
            return WHITE_PAINT
    return NO_PAINT


@cached_kernel(KERNEL_CACHE_DIR)
def ground_rgb(s, d, lanes_per_direction, half_width, road_length):
    """RGB in [0, 1] of the ground at Frenet (s, d): asphalt with paint on the road, grass beyond."""
    if abs(d) > half_width or s < -1.0 or s > road_length + 1.0:
        return GRASS
    paint = paint_at(s, d, lanes_per_direction, road_length)
    if paint == WHITE_PAINT:
        return WHITE
    if paint == YELLOW_PAINT:
        return YELLOW
    return ASPHALT


@cached_kernel(KERNEL_CACHE_DIR)
def lookup_frenet(table, origin_x, origin_y, resolution, xy):
    """Frenet s, d (N,) [m] of global points xy (N, 2) [m] (see ``frenet_at``)."""
    s = np.empty(len(xy))
    d = np.empty(len(xy))
    for n in range(len(xy)):
        s[n], d[n] = frenet_at(table, origin_x, origin_y, resolution, xy[n, 0], xy[n, 1])
    return s, d


@cached_kernel(KERNEL_CACHE_DIR)
def paint(s, d, lanes_per_direction, road_length):
    """(N,) int8 paint codes of Frenet points (see ``paint_at``)."""
    out = np.empty(len(s), np.int8)
    for n in range(len(s)):
        out[n] = paint_at(s[n], d[n], lanes_per_direction, road_length)
    return out


@cached_kernel(KERNEL_CACHE_DIR)
def _mix(seed, index):
    """A deterministic 64-bit hash of (seed, index) (splitmix64)."""
    z = seed + np.uint64(index) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@cached_kernel(KERNEL_CACHE_DIR)
def _noise(bits, shift):
    """An integer in [-NOISE_LEVELS, NOISE_LEVELS] from 21 bits of ``bits`` starting at ``shift``."""
    return int((bits >> np.uint64(shift)) % np.uint64(2 * NOISE_LEVELS + 1)) - NOISE_LEVELS


@cached_kernel(KERNEL_CACHE_DIR)
def _to_byte(value, noise):
    return min(max(int(255.0 * value + 0.5) + noise, 0), 255)


@cached_kernel(KERNEL_CACHE_DIR)
def shade_pixels(distance, triangle, directions, origin, triangle_colour, triangle_normal, triangle_material,
                 table, grid_x, grid_y, grid_resolution, lanes_per_direction, half_width, road_length, sun,
                 noise_seed):
    """(N, 3) uint8 BGR of N camera rays: ``distance`` (N,) [m] to the first hit (inf: none), ``triangle``
    (N,) its index (any index past the last triangle: none), ``directions`` (N, 3) global unit vectors from
    ``origin`` (3,).

    Surfaces: per-triangle colour, ground textured by ``ground_rgb`` and building facades with windows (both
    from the Frenet grid), Lambert light from ``sun`` (3,) on the face turned towards the camera plus
    AMBIENT, haze towards the horizon colour with distance; sky graded by elevation where nothing is hit.
    """
    out = np.empty((len(distance), 3), np.uint8)
    for n in range(len(distance)):
        t = triangle[n]
        if t >= len(triangle_colour):
            up = math.sqrt(max(directions[n, 2], 0.0))
            r = SKY_HORIZON[0] * (1.0 - up) + SKY_ZENITH[0] * up
            g = SKY_HORIZON[1] * (1.0 - up) + SKY_ZENITH[1] * up
            b = SKY_HORIZON[2] * (1.0 - up) + SKY_ZENITH[2] * up
        else:
            r, g, b = triangle_colour[t, 0], triangle_colour[t, 1], triangle_colour[t, 2]
            material = triangle_material[t]
            if material == GROUND or material == BUILDING:
                x = origin[0] + distance[n] * directions[n, 0]
                y = origin[1] + distance[n] * directions[n, 1]
                z = origin[2] + distance[n] * directions[n, 2]
                s, d = frenet_at(table, grid_x, grid_y, grid_resolution, x, y)
                if material == GROUND:
                    r, g, b = ground_rgb(s, d, lanes_per_direction, half_width, road_length)
                else:
                    along, floor = s % 3.0, z % 3.2
                    if 0.8 < along < 2.2 and 1.0 < floor < 2.4 and z > 0.8:
                        r, g, b = WINDOW
            facing = (triangle_normal[t, 0] * directions[n, 0] + triangle_normal[t, 1] * directions[n, 1]
                      + triangle_normal[t, 2] * directions[n, 2])
            cosine = triangle_normal[t, 0] * sun[0] + triangle_normal[t, 1] * sun[1] + triangle_normal[t, 2] * sun[2]
            if facing > 0.0:
                cosine = -cosine
            light = AMBIENT + (1.0 - AMBIENT) * max(cosine, 0.0)
            haze = 1.0 - math.exp(-distance[n] / HAZE_DISTANCE_M)
            r = r * light * (1.0 - haze) + SKY_HORIZON[0] * haze
            g = g * light * (1.0 - haze) + SKY_HORIZON[1] * haze
            b = b * light * (1.0 - haze) + SKY_HORIZON[2] * haze
        bits = _mix(noise_seed, n)
        out[n, 0] = _to_byte(b, _noise(bits, 0))
        out[n, 1] = _to_byte(g, _noise(bits, 21))
        out[n, 2] = _to_byte(r, _noise(bits, 42))
    return out


class FrenetRaster:
    """Fast Frenet lookup for many global points: (s, d) of a road precomputed on a RESOLUTION_M grid around it
    and interpolated bilinearly (both are smooth near the road; exact on straights)."""

    RESOLUTION_M = 1.0

    def __init__(self, road, margin_m: float = 80.0) -> None:
        self.road = road
        self.origin = road.centre.min(axis=0) - margin_m
        extent = road.centre.max(axis=0) + margin_m - self.origin
        width, height = (np.ceil(extent / self.RESOLUTION_M).astype(int) + 1)
        xs = self.origin[0] + self.RESOLUTION_M * np.arange(width)
        ys = self.origin[1] + self.RESOLUTION_M * np.arange(height)
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
        s, d = road.to_frenet(grid)
        self.table = np.stack([s, d], axis=-1).reshape(height, width, 2)

    def lookup(self, xy: np.ndarray):
        """Global xy (N, 2) [m] -> s, d (N,) [m]."""
        xy = np.ascontiguousarray(np.asarray(xy, dtype=np.float64).reshape(-1, 2))
        return lookup_frenet(self.table, float(self.origin[0]), float(self.origin[1]), self.RESOLUTION_M, xy)

    def paint(self, xy: np.ndarray) -> np.ndarray:
        """(N,) int8 lane paint codes (NO_PAINT, WHITE_PAINT, YELLOW_PAINT) at global xy (N, 2) [m]."""
        s, d = self.lookup(xy)
        return paint(s, d, self.road.lanes_per_direction, self.road.length)
