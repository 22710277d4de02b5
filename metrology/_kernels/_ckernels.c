/*
 * Per-sample kernels of the metrology pipeline.
 *
 * Why this is in C: these loops run over every sample of every channel (7 x 32,000 per second in,
 * 11 x 30,720 per second out at 60 Hz) and do a few multiply-adds per sample with data-dependent
 * indexing (interpolation taps at fractional positions), a recursion (IIR filter) or several
 * reductions of the same data at once (half-cycle sums of squares, peaks, v*i and the fundamental's
 * DFT bin of each derived signal, formed from the inputs on the fly; the harmonic subgroups of every
 * 10/12-cycle window, which numpy forms in a dozen passes over strided views). numpy can only express them
 * with large temporaries (6 gathered taps per output sample, per channel; an (m, 512, 11) matrix
 * product read five times) or a Python-level wrapper per call (scipy's sosfilt costs ~150 us per
 * 1024-sample block in argument handling alone), which kept the whole pipeline near 16x real time on
 * one core; the target is 100x. Each function here has a numpy definition in reference.py with the
 * same arguments, and tests/unit/test_metrology_kernels.py checks that both agree.
 *
 * Arrays are C-contiguous float64 (or int64), read through numpy's C API where the build found numpy's headers,
 * else through the buffer protocol (args.c): the extension builds without numpy. Outputs are written into
 * caller-allocated buffers.
 *
 * This file is the module (its table of kernels); the kernels are in the C files beside it, one per stage
 * (resample.c, cycles.c, tracker.c, filters.c, flicker.c, events.c, window.c, harmonics.c, intervals.c),
 * their arguments' checks in args.c, and what they share in kernels.h.
 */
#include "kernels.h"

static PyMethodDef methods[] = {
    {"resample_cycles", k_resample_cycles, METH_VARARGS, "Lagrange resampling at spc positions per cycle."},
    {"cycle_stats", k_cycle_stats, METH_VARARGS, "Half-cycle sums of squares, peaks, v*i sums and DFT bin 1 of x @ mat."},
    {"cycle_batch", k_cycle_batch, METH_VARARGS, "resample_cycles and cycle_stats of a batch into a cycle log's rows."},
    {"sosfilt", k_sosfilt, METH_VARARGS, "Cascade of biquads (direct form II transposed) with state."},
    {"rising_crossings", k_rising_crossings, METH_VARARGS, "Rising zero crossings: index, cubic root, peak before."},
    {"track_crossings", k_track_crossings, METH_VARARGS, "The cycle tracker's crossings, delays and acceptance rules."},
    {"track_block", k_track_block, METH_VARARGS, "The cycle tracker's filter, crossings and acceptance over a block."},
    {"flicker_squares", k_flicker_squares, METH_VARARGS, "block_squares of carried rows and a block, with times."},
    {"cycle_change", k_cycle_change, METH_VARARGS, "Largest change of the derived signals from one cycle to the next."},
    {"harmonic_values", k_harmonic_values, METH_VARARGS, "Harmonic values of a window from its DFT lines."},
    {"block_squares", k_block_squares, METH_VARARGS, "Mean square of x @ matrix over runs of d rows."},
    {"event_screen", k_event_screen, METH_VARARGS, "Dip/swell and RVC screen of a batch of Urms(1/2) values."},
    {"flicker_chain", k_flicker_chain, METH_VARARGS, "The flickermeter's filters, division and squaring per sample."},
    {"harmonic_groups", k_harmonic_groups, METH_VARARGS, "Harmonic and interharmonic subgroup energies and line phases."},
    {"interval_values", k_interval_values, METH_VARARGS, "Every value of an interval from its cycles' measures."},
    {"interval_energy", k_interval_energy, METH_VARARGS, "Energy of a run of cycles, uncompensated and compensated."},
    {"window_harmonics", k_window_harmonics, METH_VARARGS, "Every spectral value of a window from its inputs' lines."},
    {"aggregate_add", k_aggregate_add, METH_VARARGS, "One interval into the running sums of an aggregation."},
    {"aggregate_result", k_aggregate_result, METH_VARARGS, "The values of an aggregation from its running sums."},
    {"cycle_times", k_cycle_times, METH_VARARGS, "Clock times of cycles and half cycles from their boundaries."},
    {"window_append", k_window_append, METH_VARARGS, "Cycles of resampled inputs into a window's rows."},
    {"half_cycle_rms", k_half_cycle_rms, METH_VARARGS, "Urms(1/2) from half-cycle mean squares."},
    {"half_cycle_events", k_half_cycle_events, METH_VARARGS, "Urms(1/2) and the voltage events' screen of a batch."},
    {"window_finish", k_window_finish, METH_VARARGS, "A window's angles, deviations and signalling voltages."},
    {"window_rfft", k_window_rfft, METH_VARARGS, "The first lines of the real DFT of each row of a window."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ckernels", "Metrology C kernels.", -1, methods};

#ifndef SOURCE_SHA256
#define SOURCE_SHA256 ""      /* built without setup.py: the start-up check cannot tell its source */
#endif

PyMODINIT_FUNC PyInit__ckernels(void) {
    if (kernel_args_init() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "SOURCE_SHA256", SOURCE_SHA256) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
