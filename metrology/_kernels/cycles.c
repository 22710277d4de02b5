/* The derived signals of each resampled cycle and their statistics; a batch resampled and measured in one
 * call. */
#include "kernels.h"

#define CS_MAX_K 64
#define CS_K12 12
#define DERIVE_ROWS 32

/* y (s, kp) = x (s, c) @ mat for one cycle, from mat's ELL form (p terms per derived signal, padded with exact
 * zeros): one signal at a time, so each one's inputs and weights sit in registers; a plain copy (one term of
 * weight 1) is the common case. Columns k..kp-1 are zero. */
static inline void derive_block(const double *restrict x, Py_ssize_t s, Py_ssize_t c, Py_ssize_t k, int kp,
                                int p, const int *restrict ell_in, const double *restrict ell_w, double *restrict y)
{
    for (Py_ssize_t q = 0; q < k; q++) {
        const int *in = ell_in + q * p;
        const double *w = ell_w + q * p;
        int n = p;
        while (n > 1 && w[n - 1] == 0.0)     /* the padding adds zeros: skip it */
            n--;
        double *restrict col = y + q;
        if (n == 1 && w[0] == 1.0) {
            const double *restrict src = x + in[0];
            for (Py_ssize_t j = 0; j < s; j++)
                col[j * kp] = src[j * c];
        } else if (n == 2) {
            const double *restrict a = x + in[0], *restrict b = x + in[1];
            const double wa = w[0], wb = w[1];
            for (Py_ssize_t j = 0; j < s; j++)
                col[j * kp] = (0.0 + wa * a[j * c]) + wb * b[j * c];
        } else {
            for (Py_ssize_t j = 0; j < s; j++) {
                double v = 0.0;
                for (int t = 0; t < n; t++)
                    v += w[t] * x[j * c + in[t]];
                col[j * kp] = v;
            }
        }
    }
    for (Py_ssize_t j = 0; j < s; j++)
        for (Py_ssize_t q = k; q < kp; q++)
            y[j * kp + q] = 0.0;
}

/* One row's four signals into a group's sums: squares, peak |y| (a NaN never replaces the peak, as the scalar
 * form's comparison), and the DFT bin 1 sums. */
#define STATS_STEP(a, sq, pk, re, im)                                    \
    do {                                                                 \
        const v4d fa_ = (v4d)((v4l)(a) & abs_mask);                      \
        const v4l up_ = fa_ > (pk);                                      \
        (sq) += (a) * (a);                                               \
        (pk) = (v4d)(((v4l)fa_ & up_) | ((v4l)(pk) & ~up_));             \
        (re) += (a) * cj;                                                \
        (im) += (a) * sj;                                                \
    } while (0)

/* Statistics of one cycle of derived signals y (s, kp), kp a multiple of 4: for each signal, the sums of squares
 * of each half, peak |y| and the DFT bin 1 sums, four signals to a vector; each signal's sums add up over j in
 * order, as a plain loop would. The form for the signal counts and inputs the register form (cycle_stats12) does
 * not take. */
static inline __attribute__((always_inline)) void cycle_block_stats(
    const double *restrict y, Py_ssize_t s, int kp, const double *restrict cs, const double *restrict sn,
    double *restrict o_sq0, double *restrict o_sq1, double *restrict o_pk, double *restrict o_re,
    double *restrict o_im)
{
    const Py_ssize_t half = s / 2;
    const v4l abs_mask = (v4l){0, 0, 0, 0} + 0x7fffffffffffffffLL;
    const v4d zero = {0, 0, 0, 0};
    for (int g = 0; g < kp; g += 4) {
        v4d pk = zero, re = zero, im = zero;
        for (int h = 0; h < 2; h++) {
            v4d sq = zero;
            for (Py_ssize_t j = h ? half : 0; j < (h ? s : half); j++) {
                const double cj = cs[j], sj = sn[j];
                const v4d a = v4_load(y + j * kp + g);
                STATS_STEP(a, sq, pk, re, im);
            }
            v4_store((h ? o_sq1 : o_sq0) + g, sq);
        }
        v4_store(o_pk + g, pk);
        v4_store(o_re + g, re);
        v4_store(o_im + g, im);
    }
}

/* The derived signals as vectors of four, formed in registers row by row: group g < 3 is mat's columns 4g..4g+3,
 * group 3 the products' voltages (columns v0.., nvi of them) where they are not one of those, group 4 the
 * products' currents (columns i0..). Each group is the sum of its inputs' terms in input order (an input with
 * no weight in the group is no term; within a term the other lanes add exact zeros: the same values as a sum
 * per signal). The DFT bin 1 sums are taken of the inputs and carried through mat at the end (it is linear). */
typedef struct {
    int n[5];
    int in[5][CS_MAX_C];
    v4d w[5][CS_MAX_C];
    v4d dense[CS_MAX_C][5];      /* every input's weights in every group, zeros included */
    Py_ssize_t c, k;
    int vgroup;
    unsigned used;               /* bit 7g + i: input i has a weight in group g (g < 3) or in the currents' (g == 3) */
    const double *mat;
} groups12;

static void groups12_init(groups12 *gr, const double *mat, Py_ssize_t c, Py_ssize_t k, Py_ssize_t v0, Py_ssize_t i0,
                          Py_ssize_t nvi)
{
    gr->c = c;
    gr->k = k;
    gr->mat = mat;
    gr->vgroup = v0 == 0 ? 0 : 3;
    gr->used = 0;
    for (int g = 0; g < 5; g++) {
        gr->n[g] = 0;
        for (Py_ssize_t i = 0; i < c; i++) {
            double w[4];
            int any = 0;
            for (int l = 0; l < 4; l++) {
                const Py_ssize_t q = g < 3 ? 4 * g + l : (g == 3 ? v0 : i0) + l;
                const int valid = g < 3 ? q < k : l < nvi;
                w[l] = valid ? mat[i * k + q] : 0.0;
                any |= w[l] != 0.0;
            }
            gr->dense[i][g] = v4_load(w);
            if (any && g != 3 && i < 7)
                gr->used |= 1u << (7 * (g < 3 ? g : 3) + i);
            if (any) {
                gr->in[g][gr->n[g]] = (int)i;
                gr->w[g][gr->n[g]++] = v4_load(w);
            }
        }
    }
}

/* Group g of the derived signals of the input row xr. */
static inline __attribute__((always_inline)) v4d derive_group(const groups12 *gr, int g, const double *xr)
{
    v4d acc = {0, 0, 0, 0};
    for (int t = 0; t < gr->n[g]; t++)
        acc += splat(xr[gr->in[g][t]]) * gr->w[g][t];
    return acc;
}

/* The same for the seven inputs of the board (c == 7), unrolled: the terms of the inputs that ``used`` (a constant
 * where it is inlined, groups12.used) names, or of every input (USED_ALL). A zero weight adds an exact zero, so the
 * values are those of the sparse sum, with no index to load per term. */
#define USED(g0, g1, g2, gi) ((unsigned)(g0) | (unsigned)(g1) << 7 | (unsigned)(g2) << 14 | (unsigned)(gi) << 21)
#define USED_ALL USED(0x7f, 0x7f, 0x7f, 0x7f)
/* the products' currents are signals 6.. (I_PH): lanes 2, 3 of group 1 and 0, 1 of group 2, taken from there
 * (cycle_stats12), no terms of their own; every input in groups 0..2, or those of the wiring matrices of
 * systems.py (4W-WYE, 3W-WYE, DELTA) */
#define USED_I6_ALL USED(0x7f, 0x7f, 0x7f, 0)
#define USED_I6_4W_WYE USED(0x2a, 0x2f, 0x55, 0)
#define USED_I6_3W_WYE USED(0x2a, 0x2f, 0x15, 0)
#define USED_I6_DELTA USED(0x22, 0x27, 0x15, 0)


/* derive7 reads xr[0..9] (splat_at). */
static inline __attribute__((always_inline)) void derive7(const v4d (*dense)[5], const double *xr, v4d *a0,
                                                          v4d *a1, v4d *a2, v4d *ai, const unsigned used)
{
    v4d s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s4 = s0;
#pragma GCC unroll 7
    for (int i = 0; i < 7; i++) {
        const v4d xi = splat_at(xr + i);
        if (used >> i & 1)
            s0 += xi * dense[i][0];
        if (used >> (7 + i) & 1)
            s1 += xi * dense[i][1];
        if (used >> (14 + i) & 1)
            s2 += xi * dense[i][2];
        if (used >> (21 + i) & 1)
            s4 += xi * dense[i][4];
    }
    *a0 = s0, *a1 = s1, *a2 = s2, *ai = s4;
}

/* One cycle (s rows of c inputs at x, 4 <= c <= 8) of cycle_stats with at most 12 signals; vgroup is a constant
 * where it is inlined: 0 the products' voltages are group 0, 3 their own group, 7 as 0 with c == 7 (derive7, with
 * the terms of ``used``, also a constant). Reads cs[0 .. s+2], sn[0 .. s+2] and three items past each row
 * (splat_at): the last row from last_row where that is not NULL (a copy of it with three more items).
 * Returns 0 where an input of the cycle is NaN or infinite: its sums are then not those of the reference. */
static inline __attribute__((always_inline)) int cycle_stats12(
    const groups12 *gr, const int vgroup, const unsigned used, const double *restrict x, const double *last_row,
    Py_ssize_t s, const double *restrict cs, const double *restrict sn, double *restrict o_sq0, double *restrict o_sq1, double *restrict o_pk,
    double *restrict o_re, double *restrict o_im, double *restrict o_vi)
{
    const Py_ssize_t half = s / 2, c = gr->c, hc = c - 4;
    const v4l abs_mask = (v4l){0, 0, 0, 0} + 0x7fffffffffffffffLL;
    const v4d zero = {0, 0, 0, 0};
    v4d pk0 = zero, pk1 = zero, pk2 = zero, rel = zero, reh = zero, iml = zero, imh = zero, vi = zero;
    for (int h = 0; h < 2; h++) {
        v4d sq0 = zero, sq1 = zero, sq2 = zero;
        for (Py_ssize_t j = h ? half : 0; j < (h ? s : half); j++) {
            const double *xr = j == s - 1 && last_row != NULL ? last_row : x + j * c;
            v4d a0, a1, a2, ai;
            if (vgroup == 7) {
                derive7(gr->dense, xr, &a0, &a1, &a2, &ai, used);
                if ((used >> 21) == 0)      /* the currents (signals 6..9) as groups 1 and 2 have them: the same sums */
                    ai = SHUFFLE2(a1, a2, 2, 3, 4, 5);
            } else {
                a0 = derive_group(gr, 0, xr), a1 = derive_group(gr, 1, xr), a2 = derive_group(gr, 2, xr);
                ai = derive_group(gr, 4, xr);
            }
            const v4d av = vgroup == 0 || vgroup == 7 ? a0 : derive_group(gr, 3, xr);
            const v4d f0 = (v4d)((v4l)a0 & abs_mask), f1 = (v4d)((v4l)a1 & abs_mask), f2 = (v4d)((v4l)a2 & abs_mask);
            const v4l u0 = f0 > pk0, u1 = f1 > pk1, u2 = f2 > pk2;   /* a NaN never replaces the peak */
            pk0 = (v4d)(((v4l)f0 & u0) | ((v4l)pk0 & ~u0));
            pk1 = (v4d)(((v4l)f1 & u1) | ((v4l)pk1 & ~u1));
            pk2 = (v4d)(((v4l)f2 & u2) | ((v4l)pk2 & ~u2));
            sq0 += a0 * a0;
            sq1 += a1 * a1;
            sq2 += a2 * a2;
            vi += av * ai;
            const v4d cj = splat_at(cs + j), sj = splat_at(sn + j), xl = v4_load(xr), xh = v4_load(xr + hc);
            rel += xl * cj;
            reh += xh * cj;
            iml += xl * sj;
            imh += xh * sj;
        }
        double *o = h ? o_sq1 : o_sq0;
        v4_store(o, sq0);
        v4_store(o + 4, sq1);
        v4_store(o + 8, sq2);
    }
    v4_store(o_pk, pk0), v4_store(o_pk + 4, pk1), v4_store(o_pk + 8, pk2);
    v4_store(o_vi, vi);
    double re_in[8], im_in[8];
    v4_store(re_in, rel), v4_store(re_in + hc, reh);
    v4_store(im_in, iml), v4_store(im_in + hc, imh);
    for (Py_ssize_t q = 0; q < gr->k; q++) {
        double re = 0.0, im = 0.0;
        for (Py_ssize_t i = 0; i < c; i++) {
            const double w = gr->mat[i * gr->k + q];
            if (w != 0.0) {
                re += w * re_in[i];
                im += w * im_in[i];
            }
        }
        o_re[q] = re;
        o_im[q] = im;
    }
    int finite = 1;      /* an input's DFT sums are finite unless one of its samples is NaN or infinite */
    for (Py_ssize_t i = 0; i < c; i++)
        finite &= re_in[i] * 0.0 + im_in[i] * 0.0 == 0.0;
    return finite;
}

/* Cycle cy's outputs of cycle_stats from its sums. */
static inline void cycle_outputs(Py_ssize_t cy, Py_ssize_t k, Py_ssize_t half, double rms_dft, const double *acc_sq0,
                                 const double *acc_sq1, const double *acc_pk, const double *acc_re,
                                 const double *acc_im, double *sq, double *ms, double *peak, double *fund)
{
    for (Py_ssize_t q = 0; q < k; q++) {
        const double h0 = acc_sq0[q] / (double)half, h1 = acc_sq1[q] / (double)half;
        sq[(cy * 2) * k + q] = h0;
        sq[(cy * 2 + 1) * k + q] = h1;
        ms[cy * k + q] = (h0 + h1) / 2;
        peak[cy * k + q] = acc_pk[q];
        fund[2 * (cy * k + q)] = acc_re[q] * rms_dft;          /* RMS phasor, cosine reference */
        fund[2 * (cy * k + q) + 1] = -acc_im[q] * rms_dft;
    }
}

/* Whether the n values at x are all finite (x * 0 is 0 for them, NaN for a NaN or an infinity). */
static inline int all_finite(const double *x, Py_ssize_t n)
{
    v4d a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
    double tail = 0.0;
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16) {      /* four independent sums: no chain of dependent additions */
        a0 += v4_load(x + i) * 0.0;
        a1 += v4_load(x + i + 4) * 0.0;
        a2 += v4_load(x + i + 8) * 0.0;
        a3 += v4_load(x + i + 12) * 0.0;
    }
    for (; i < n; i++)
        tail += x[i] * 0.0;
    const v4d acc = (a0 + a1) + (a2 + a3);
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + tail == 0.0;
}

/* The sums of cycle_stats_core for one cycle (s rows of c inputs at x) with a NaN or infinite input, as the reference
 * forms them: each derived signal the sum of every input's term, zero weights included (zero times NaN or infinity
 * is NaN: such a sample is NaN in every signal), and the peak NaN where the signal has a NaN (numpy's max). The
 * fast forms leave zero weights out, or take the peak of the numbers; they serve every cycle of finite inputs. */
static __attribute__((noinline, cold)) void cycle_sums_nonfinite(const double *x, const double *mat, Py_ssize_t s, Py_ssize_t c, Py_ssize_t k,
                                 const double *cs, const double *sn, Py_ssize_t v0, Py_ssize_t i0, Py_ssize_t nvi,
                                 double *sq0, double *sq1, double *pk, double *re, double *im, double *vi)
{
    for (Py_ssize_t q = 0; q < k; q++)
        sq0[q] = sq1[q] = pk[q] = re[q] = im[q] = 0.0;
    for (Py_ssize_t q = 0; q < nvi; q++)
        vi[q] = 0.0;
    for (Py_ssize_t j = 0; j < s; j++) {
        double y[CS_MAX_K];
        for (Py_ssize_t q = 0; q < k; q++) {
            double v = 0.0;
            for (Py_ssize_t i = 0; i < c; i++)
                v += x[j * c + i] * mat[i * k + q];
            y[q] = v;
        }
        double *sq = j < s / 2 ? sq0 : sq1;
        for (Py_ssize_t q = 0; q < k; q++) {
            const double a = fabs(y[q]);
            sq[q] += y[q] * y[q];
            pk[q] = isnan(pk[q]) || !(isnan(a) || a > pk[q]) ? pk[q] : a;
            re[q] += y[q] * cs[j];
            im[q] += y[q] * sn[j];
        }
        for (Py_ssize_t q = 0; q < nvi; q++)
            vi[q] += y[v0 + q] * y[i0 + q];
    }
}

/* The cycle_stats pass over m cycles (see k_cycle_stats), y a scratch block (s, kp), kp a multiple of 4. */
PER_CPU
static void cycle_stats_core(const double *x, const double *mat, Py_ssize_t m, Py_ssize_t s, Py_ssize_t c,
                             Py_ssize_t k, int kp, int p_max, const int *ell_in, const double *ell_w, const double *cs, const double *sn,
                             Py_ssize_t v0, Py_ssize_t i0, Py_ssize_t nvi, double *y, double *sq, double *ms,
                             double *peak, double *vi, double *fund)
{
    const Py_ssize_t half = s / 2;
    const double rms_dft = sqrt(2.0) / (double)s;
    const int vi_vec = nvi <= 4 && v0 + 4 <= kp && i0 + 4 <= kp;
    const int in_registers = kp == 12 && nvi <= 4 && c >= 4 && c <= 8;
    groups12 gr = {.c = 0};
    double last[CS_MAX_C + 3] = {0};
    if (in_registers) {
        groups12_init(&gr, mat, c, k, v0, i0, nvi);
        /* cos and sin with three items more, and the last cycle's last row (its reads past the row are past x):
         * the register form reads three items past each (splat_at). In y, which it does not use: s * kp >= 2s + 6 */
        if (s > 0) {
            memcpy(y, cs, (size_t)s * sizeof(double));
            memcpy(y + s + 3, sn, (size_t)s * sizeof(double));
            y[s] = y[s + 1] = y[s + 2] = y[2 * s + 3] = y[2 * s + 4] = y[2 * s + 5] = 0.0;
            cs = y;
            sn = y + s + 3;
        }
        if (m > 0 && s > 0)
            memcpy(last, x + ((m - 1) * s + s - 1) * c, (size_t)c * sizeof(double));
    }
    for (Py_ssize_t cy = 0; cy < m; cy++) {
        double acc_sq0[CS_MAX_K], acc_sq1[CS_MAX_K], acc_pk[CS_MAX_K], acc_re[CS_MAX_K], acc_im[CS_MAX_K];
        double acc_vi[16];
        const double *xc = x + cy * s * c, *last_row = cy == m - 1 ? last : NULL;
        int finite;
        if (in_registers) {
            /* the board's inputs, the products' voltages the first group: the terms of the system types' matrices
             * (each its own copy of the loop, the others left out), or of every input */
            const unsigned used3 = gr.used & USED(0x7f, 0x7f, 0x7f, 0);
            if (gr.vgroup == 0 && c == 7 && i0 == 6 && used3 == USED_I6_4W_WYE)
                finite = cycle_stats12(&gr, 7, USED_I6_4W_WYE, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else if (gr.vgroup == 0 && c == 7 && i0 == 6 && used3 == USED_I6_3W_WYE)
                finite = cycle_stats12(&gr, 7, USED_I6_3W_WYE, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else if (gr.vgroup == 0 && c == 7 && i0 == 6 && used3 == USED_I6_DELTA)
                finite = cycle_stats12(&gr, 7, USED_I6_DELTA, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else if (gr.vgroup == 0 && c == 7 && i0 == 6)
                finite = cycle_stats12(&gr, 7, USED_I6_ALL, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else if (gr.vgroup == 0 && c == 7)
                finite = cycle_stats12(&gr, 7, USED_ALL, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else if (gr.vgroup == 0)
                finite = cycle_stats12(&gr, 0, USED_ALL, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
            else
                finite = cycle_stats12(&gr, 3, USED_ALL, xc, last_row, s, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                       acc_vi);
        } else if ((finite = all_finite(xc, s * c))) {
            for (Py_ssize_t j0 = 0; j0 < s; j0 += DERIVE_ROWS)    /* a few rows at a time: their lines stay in L1 */
                derive_block(xc + j0 * c, s - j0 < DERIVE_ROWS ? s - j0 : DERIVE_ROWS, c, k, kp, p_max, ell_in, ell_w,
                             y + j0 * kp);
            cycle_block_stats(y, s, kp, cs, sn, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im);
            if (vi_vec) {
                v4d acc = {0, 0, 0, 0};
                for (Py_ssize_t j = 0; j < s; j++)
                    acc += v4_load(y + j * kp + v0) * v4_load(y + j * kp + i0);
                v4_store(acc_vi, acc);
            } else {
                for (Py_ssize_t q = 0; q < nvi; q++) {
                    acc_vi[q] = 0.0;
                    for (Py_ssize_t j = 0; j < s; j++)
                        acc_vi[q] += y[j * kp + v0 + q] * y[j * kp + i0 + q];
                }
            }
        }
        if (!finite)
            cycle_sums_nonfinite(xc, mat, s, c, k, cs, sn, v0, i0, nvi, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im,
                                 acc_vi);
        for (Py_ssize_t q = 0; q < nvi; q++)
            vi[cy * nvi + q] = acc_vi[q] / (double)s;
        cycle_outputs(cy, k, half, rms_dft, acc_sq0, acc_sq1, acc_pk, acc_re, acc_im, sq, ms, peak, fund);
    }
}

/* cycle_stats_core of m cycles with its scratch block and mat's ELL form: 0, -1 where the block's size overflows,
 * -2 where it cannot be allocated. Takes no Python object: runs without the GIL. */
static int cycle_stats_run(const double *x, const double *mat, Py_ssize_t m, Py_ssize_t s, Py_ssize_t c, Py_ssize_t k,
                           const double *cs, const double *sn, Py_ssize_t v0, Py_ssize_t i0, Py_ssize_t nvi,
                           double *sq, double *ms, double *peak, double *vi, double *fund)
{
    const int kp = k <= CS_K12 ? CS_K12 : (int)((k + 3) & ~(Py_ssize_t)3);   /* the statistics go in fours */
    const Py_ssize_t y_bytes = ITEMS(s > 0 ? s : 1, kp, sizeof(double));
    if (y_bytes < 0)
        return -1;
    double *y = PyMem_RawMalloc((size_t)y_bytes);
    if (y == NULL)
        return -2;
    /* mat as at most P terms per derived signal (ELL format), in input order; a column with fewer
     * terms is padded with weight 0 on its own first input, which adds exact zeros at the end */
    int ell_in[CS_MAX_K * CS_MAX_C] = {0};
    double ell_w[CS_MAX_K * CS_MAX_C] = {0};
    int p_max = 1;
    for (Py_ssize_t q = 0; q < k; q++) {
        int n = 0;
        for (Py_ssize_t i = 0; i < c; i++)
            if (mat[i * k + q] != 0.0)
                n++;
        p_max = n > p_max ? n : p_max;
    }
    for (Py_ssize_t q = 0; q < k; q++) {
        int n = 0, first = 0;
        for (Py_ssize_t i = 0; i < c; i++)
            if (mat[i * k + q] != 0.0) {
                if (n == 0)
                    first = (int)i;
                ell_in[q * p_max + n] = (int)i;
                ell_w[q * p_max + n++] = mat[i * k + q];
            }
        for (; n < p_max; n++)
            ell_in[q * p_max + n] = first;
    }
    cycle_stats_core(x, mat, m, s, c, k, kp, p_max, ell_in, ell_w, cs, sn, v0, i0, nvi, y, sq, ms, peak, vi, fund);
    PyMem_RawFree(y);
    return 0;
}

/* cycle_stats(x (m, s, c), mat (c, k), cos (s,), sin (s,), half_ms (m, 2, k), ms (m, k), peak (m, k),
 *             vi (m, nvi), fund (m, k) complex as (re, im) pairs, m, s, c, k, v0, i0, nvi): for the derived
 *             signals y = x @ mat of every cycle, the mean square of each half and of the cycle, the peak
 *             |y|, the mean of y[v0+q] * y[i0+q], and the RMS phasor of DFT bin 1 (cosine reference).
 *             Each cycle's derived signals are formed row by row in registers (cycle_stats12), or, for the
 *             shapes that form does not take, from the nonzero entries of mat into a scratch block, then
 *             reduced. */
CK_HIDDEN PyObject *k_cycle_stats(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(9);
    Py_ssize_t m, s, c, k, v0, i0, nvi;
    if (kernel_args(args, o, 9, "nnnnnnn", &m, &s, &c, &k, &v0, &i0, &nvi))
        return NULL;
    if (k > CS_MAX_K || c > CS_MAX_C || nvi > 16 || v0 < 0 || i0 < 0 || v0 + nvi > k || i0 + nvi > k)
        return bad_args("cycle_stats: too many signals or bad v/i indices");
    if (s < 2 || s % 2)        /* two halves of s / 2 samples, as the reference's reshape takes them */
        return bad_args("cycle_stats: the samples of a cycle are not two equal halves");
    const array_arg spec[] = {{"x", 0, ITEMS(m, s, c)}, {"mat", 0, ITEMS(c, k)}, {"cos", 0, ITEMS(s)},
                              {"sin", 0, ITEMS(s)}, {"half_ms", 1, ITEMS(m, 2, k)}, {"ms", 1, ITEMS(m, k)},
                              {"peak", 1, ITEMS(m, k)}, {"vi", 1, ITEMS(m, nvi)}, {"fund", 1, ITEMS(m, 2, k)}};
    if (get_arrays(o, spec, 9, b))
        return NULL;
    const double *x = b[0].view.buf, *mat = b[1].view.buf, *cs = b[2].view.buf, *sn = b[3].view.buf;
    double *sq = b[4].view.buf, *ms = b[5].view.buf, *peak = b[6].view.buf, *vi = b[7].view.buf;
    double *fund = b[8].view.buf;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = cycle_stats_run(x, mat, m, s, c, k, cs, sn, v0, i0, nvi, sq, ms, peak, vi, fund);
    Py_END_ALLOW_THREADS
    release(b, 9);
    if (ok < 0)
        return ok == -1 ? bad_args("cycle_stats: bad dimensions") : PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* cycle_batch(buf (n, c), bounds (ncyc + 1,), real (ncyc + 1,), delays (c,), mat (c, k), cos (spc,), sin (spc,),
 *             samples (ncyc, spc, c), start, end, duration, freq (cap,), half_ms (cap, 2, k), ms (cap, k),
 *             peak (cap, k), vi (cap, nvi), fund (cap, k) complex as (re, im) pairs,
 *             n, c, ncyc, spc, k, v0, i0, nvi, cap, row, offset, fs, fmin, fmax):
 *             resample_cycles of the ncyc cycles between bounds into samples, cycle_stats of them into rows
 *             row .. row + ncyc - 1 of half_ms .. fund, and each cycle's boundaries, its duration in seconds
 *             ((end - start) / fs) and frequency (1 / duration; NaN unless it is within fmin .. fmax and both
 *             its boundaries are measured crossings, real nonzero) into the same rows of start .. freq. One
 *             call for the resampler and the per-cycle stage of a batch, writing into a cycle log's columns. */
CK_HIDDEN PyObject *k_cycle_batch(PyObject *self, PyObject *args)
{
    KERNEL_ARRAYS(17);
    Py_ssize_t n, c, ncyc, spc, k, v0, i0, nvi, cap, row;
    double offset, fs, fmin, fmax;
    if (kernel_args(args, o, 17, "nnnnnnnnnndddd", &n, &c, &ncyc, &spc, &k, &v0, &i0, &nvi, &cap, &row, &offset,
                    &fs, &fmin, &fmax))
        return NULL;
    if (spc < 1 || spc > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(double) || ncyc < 0 || ncyc == PY_SSIZE_T_MAX ||
        (n < 1 && ncyc > 0 && c > 0))
        return bad_args("cycle_batch: spc must be positive, and a buffer needs a row to resample");
    if (k > CS_MAX_K || c > CS_MAX_C || nvi > 16 || v0 < 0 || i0 < 0 || v0 + nvi > k || i0 + nvi > k)
        return bad_args("cycle_batch: too many signals or bad v/i indices");
    if (spc % 2)               /* two halves of spc / 2 samples, as the reference's reshape takes them */
        return bad_args("cycle_batch: the samples of a cycle are not two equal halves");
    if (row < 0 || cap < 0 || row > cap || ncyc > cap - row)
        return bad_args("cycle_batch: the cycles' rows are past the columns");
    const array_arg spec[] = {{"buf", 0, ITEMS(n, c)}, {"bounds", 0, ncyc + 1}, {"real", 0, ncyc + 1},
                              {"delays", 0, ITEMS(c)}, {"mat", 0, ITEMS(c, k)}, {"cos", 0, ITEMS(spc)},
                              {"sin", 0, ITEMS(spc)}, {"samples", 1, ITEMS(ncyc, spc, c)}, {"start", 1, cap},
                              {"end", 1, cap}, {"duration", 1, cap}, {"freq", 1, cap},
                              {"half_ms", 1, ITEMS(cap, 2, k)}, {"ms", 1, ITEMS(cap, k)}, {"peak", 1, ITEMS(cap, k)},
                              {"vi", 1, ITEMS(cap, nvi)}, {"fund", 1, ITEMS(cap, 2, k)}};
    if (get_arrays(o, spec, 17, b))
        return NULL;
    double *grid = PyMem_RawMalloc((size_t)spc * sizeof(double));
    if (grid == NULL)
        return no_memory(b, 17);
    const double *bounds = b[1].view.buf, *real = b[2].view.buf;
    double *samples = b[7].view.buf, *start = b[8].view.buf, *end = b[9].view.buf, *duration = b[10].view.buf;
    double *freq = b[11].view.buf;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < spc; j++)
        grid[j] = (double)j / (double)spc;
    resample_core(b[0].view.buf, n, c, bounds, grid, spc, offset, ncyc * spc, b[3].view.buf, samples);
    ok = cycle_stats_run(samples, b[4].view.buf, ncyc, spc, c, k, b[5].view.buf, b[6].view.buf, v0, i0, nvi,
                         (double *)b[12].view.buf + row * 2 * k, (double *)b[13].view.buf + row * k,
                         (double *)b[14].view.buf + row * k, (double *)b[15].view.buf + row * nvi,
                         (double *)b[16].view.buf + row * 2 * k);
    for (Py_ssize_t q = 0; q < ncyc; q++) {       /* as numpy: (end - start) / fs, 1 / duration, NaN unless kept */
        const double d = (bounds[q + 1] - bounds[q]) / fs, f = 1.0 / d;
        start[row + q] = bounds[q];
        end[row + q] = bounds[q + 1];
        duration[row + q] = d;
        freq[row + q] = f >= fmin && f <= fmax && real[q] != 0.0 && real[q + 1] != 0.0 ? f : NAN;
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(grid);
    release(b, 17);
    if (ok < 0)
        return ok == -1 ? bad_args("cycle_batch: bad dimensions") : PyErr_NoMemory();
    Py_RETURN_NONE;
}
