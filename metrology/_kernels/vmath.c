/* Elementary functions four lanes at a time, for loops that take one of every element of a row. */
#include "kernels.h"

/* a where the mask m is all ones, else b (m from a comparison of v4d: 0 or -1 in each lane) */
static inline v4d select4(v4l m, v4d a, v4d b)
{
    return (v4d)(((v4l)a & m) | ((v4l)b & ~m));
}

/* out = atan2(y, x) in each of four lanes, within two units in the last place of libm's (tests/unit/test_metrology_kernels.py
 * measures it), with libm's results for zeros of either sign, infinities and NaN.
 *
 * Cephes' reduction of atan: t = |y| / |x| is taken to atan(t) = b + atan(u), u at most tan(pi/8) in magnitude, with
 * b = 0 and u = t for t <= 0.66; b = pi/2 and u = -1/t for t > tan(3 pi/8); else b = pi/4 and u = (t - 1) / (t + 1).
 * Each u is one division of |y| and |x| (not of the rounded t); atan(u) = u + u z P(z) / Q(z), z = u^2, with
 * Cephes' coefficients. For x < 0 the angle is pi - atan(t) = b' + (-atan(u)), b' = pi - b. Each b is the double
 * nearest it plus the rest (what the double lacks), added to the small part before the two are summed. */
static inline __attribute__((always_inline)) void atan2_v4(const double *yp, const double *xp, double *out)
{
    const v4d y = v4_load(yp), x = v4_load(xp);
    const v4d zero = splat(0.0), one = splat(1.0), inf = splat(INFINITY);
    const v4l sign = (v4l){INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN};
    const v4d ay = (v4d)((v4l)y & ~sign), ax = (v4d)((v4l)x & ~sign);
    const v4l both_inf = (ay == inf) & (ax == inf);
    /* the branch by t itself (a product of a subnormal x and a bound would round too far); 0/0 and inf/inf are
     * NaN, which neither comparison takes: a zero y goes to the first branch, two infinities to pi/4 */
    const v4d t = ay / ax;
    const v4l big = t > splat(2.41421356237309504880);
    const v4l small = (t <= splat(0.66)) | (ay == zero);
    const v4l mid = ~big & ~small;
    /* u's numerator and denominator: a zero y (or two infinities) gives u = 0 (a zero x too: no 0/0) */
    const v4l nought = (ay == zero) | both_inf;
    /* the middle branch's |y| - |x| and |y| + |x| of the two a quarter as large where one is above 2^1020 (exact, and
     * the sum stays finite; the other is then above 2^1018: no bit is lost) */
    const v4d quarter = select4((ay > splat(0x1p1020)) | (ax > splat(0x1p1020)), splat(0.25), one);
    const v4d my = ay * quarter, mx = ax * quarter;
    v4d num = select4(big, -ax, select4(small, ay, my - mx));
    v4d den = select4(big, ay, select4(small, ax, my + mx));
    num = select4(nought, zero, num);
    den = select4(nought, one, den);
    const v4d u = num / den, z = u * u;
    const v4d p = (((splat(-8.750608600031904122785e-1) * z + splat(-1.615753718733365076637e1)) * z +
                    splat(-7.500855792314704667340e1)) * z + splat(-1.228866684490136173410e2)) * z +
                  splat(-6.485021904942025371773e1);
    const v4d q = ((((z + splat(2.485846490142306297962e1)) * z + splat(1.650270098316988542046e2)) * z +
                    splat(4.328810604912902668951e2)) * z + splat(4.853903996359136964868e2)) * z +
                  splat(1.945506571482613964425e2);
    const v4d small_part = u + u * (z * p / q);
    /* the base and its rest: x >= 0 (sign bit clear) b = 0, pi/4, pi/2; x < 0 b' = pi, 3 pi/4, pi/2 */
    const v4l left = ((v4l)x & sign) != (v4l){0, 0, 0, 0};
    const v4d base = select4(left, select4(big, splat(1.5707963267948966), select4(mid, splat(2.356194490192345),
                                                                                      splat(3.141592653589793))),
                             select4(big, splat(1.5707963267948966), select4(mid, splat(0.7853981633974483), zero)));
    const v4d rest = select4(left, select4(big, splat(6.123233995736766e-17), select4(mid, splat(9.184850993605148e-17),
                                                                                      splat(1.2246467991473532e-16))),
                             select4(big, splat(6.123233995736766e-17), select4(mid, splat(3.061616997868383e-17),
                                                                                zero)));
    const v4d angle = base + select4(left, rest - small_part, rest + small_part);
    /* the sign of y; NaN where either is NaN */
    const v4d signed_angle = (v4d)(((v4l)angle & ~sign) | ((v4l)y & sign));
    v4_store(out, select4((x == x) & (y == y), signed_angle, x + y));
}

/* out[h] = atan2 of the complex x[h * stride] (pairs of doubles: real, imaginary) for h < count: every element
 * through the same four-lane form, a row's last few too. */
PER_CPU void atan2_lines(const double *x, Py_ssize_t stride, Py_ssize_t count, double *out)
{
    for (Py_ssize_t h = 0; h < count; h += 4) {
        const Py_ssize_t k = count - h < 4 ? count - h : 4;
        double re[4] = {0.0, 0.0, 0.0, 0.0}, im[4] = {0.0, 0.0, 0.0, 0.0}, r[4];
        for (Py_ssize_t j = 0; j < k; j++) {
            re[j] = x[2 * (h + j) * stride];
            im[j] = x[2 * (h + j) * stride + 1];
        }
        atan2_v4(im, re, r);
        memcpy(out + h, r, (size_t)k * sizeof(double));
    }
}
