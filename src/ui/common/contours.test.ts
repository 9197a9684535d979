import { describe, expect, test } from 'vitest';
import { contourSegments } from './contours.ts';

/** Segment endpoints as "x,y" strings, for comparing sets of points. */
function endpoints(segments: Float32Array): Set<string> {
  const points = new Set<string>();
  for (let i = 0; i < segments.length; i += 2) points.add(`${segments[i]!.toFixed(3)},${segments[i + 1]!.toFixed(3)}`);
  return points;
}

describe('contourSegments', () => {
  test('one pixel above the level in a 3x3 map: a closed diamond halfway to its neighbours', () => {
    const map = [0, 0, 0, 0, 1, 0, 0, 0, 0];
    const segments = contourSegments(map, 3, 3, 0.5);
    expect(segments.length).toBe(4 * 4);
    expect(endpoints(segments)).toEqual(new Set(['1.000,0.500', '1.500,1.000', '1.000,1.500', '0.500,1.000']));
  });

  test('the crossing is interpolated linearly between pixel centres', () => {
    const map = [0, 0, 0, 0, 0, 1, 0, 0, 0];
    // Level 0.25 lies a quarter of the way from the 0 at x = 1 to the 1 at x = 2.
    const points = endpoints(contourSegments(map, 3, 3, 0.25));
    expect(points.has('1.250,1.000')).toBe(true);
  });

  test('regions touching the border are closed half a pixel outside the map', () => {
    const segments = contourSegments([1], 1, 1, 0.5);
    expect(endpoints(segments)).toEqual(new Set(['0.000,-0.500', '0.500,0.000', '0.000,0.500', '-0.500,0.000']));
  });

  test('nothing above (or everything below) the level: no segments', () => {
    expect(contourSegments([0.1, 0.2, 0.3, 0.4], 2, 2, 0.9)).toHaveLength(0);
  });

  test('a map entirely above the level is outlined along the border only', () => {
    const segments = contourSegments([1, 1, 1, 1], 2, 2, 0.5);
    for (let i = 0; i < segments.length; i += 2) {
      const [x, y] = [segments[i]!, segments[i + 1]!];
      expect(x <= 0 || x >= 1 || y <= 0 || y >= 1).toBe(true);
    }
    expect(segments.length).toBe(8 * 4);
  });
});
