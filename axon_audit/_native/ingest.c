/* axon_audit._native.ingest: log_batch's hot loops, the GIL released.
 *
 * 1. A batch's generated event ids.
 * polars builds ``evt_`` + 16 time digits + 6 node characters + 8 sequence digits
 * with a dozen string kernels (~175 ns per event at 1 M, ~500 ns at 10 M: every
 * pass allocates a column of strings). Here each id is written straight into an
 * Arrow string_view column: fixed 34-byte values in one data buffer and their
 * 16-byte views, so polars takes the column over without a copy.
 *
 * What the id is, is specified in Python (axon_audit/model/ids.py make_event_id,
 * axon_audit/model/schema.py _id_expr); axon_audit/model/batch_ids.py checks the
 * times' range first and the tests compare the bytes with both.
 *
 *   fill(times, seq0, node, views, data): times an int64 buffer of UTC microseconds
 *   (row i gets sequence seq0 + i), node 6 bytes, views (16 bytes a row) and data
 *   (34 bytes a row) writable buffers.
 *
 * 2. The metadata texts of a list of dicts. orjson writes the whole list as one JSON
 * array (~100 ns a dict, against ~240 ns for a dumps call per dict); this cuts that
 * text at its top-level commas into string_view views over the same bytes, so each
 * row's text is exactly what orjson writes for that dict alone (what `log` stores).
 * `null` and `{}` become nulls (no metadata). axon_audit/model/dict_columns.py has
 * checked beforehand that every value is of a type orjson writes as itself.
 *
 *   split_array(text, n, views, validity) -> nulls: text orjson's bytes of a JSON
 *   array of n values, views 16 bytes a row, validity (n + 7) / 8 bytes, zeroed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define ID_LEN 34
#define ID_MIN_US (-1000000000000000LL)   /* 1938-04-24: "-" + 15 digits of (us + 10**15) */
#define ID_MAX_US (9999999999999999LL)    /* 2286-11-20: 16 digits */

static char pairs[200]; /* "00" "01" ... "99" */

static inline void digits(char *end, uint64_t v, int n_pairs) {
    for (int k = 0; k < n_pairs; k++) {
        memcpy(end - 2 * (k + 1), pairs + 2 * (v % 100), 2);
        v /= 100;
    }
}

static PyObject *fill(PyObject *self, PyObject *args) {
    Py_buffer times, node, views, data;
    long long seq0;
    if (!PyArg_ParseTuple(args, "y*Ly*w*w*", &times, &seq0, &node, &views, &data)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = times.len / 8;
    if (times.len % 8 || node.len != 6 || seq0 < 0 || views.len < n * 16 || data.len < n * ID_LEN
            || n > INT32_MAX / ID_LEN) {
        PyErr_SetString(PyExc_ValueError, "fill: buffer sizes do not match (8-byte times, 6-byte node, "
                        "16 and 34 bytes a row, at most INT32_MAX / 34 rows)");
        goto done;
    }
    const int64_t *t = (const int64_t *)times.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (t[i] < ID_MIN_US || t[i] > ID_MAX_US) {
            PyErr_Format(PyExc_ValueError, "fill: row %zd: time %lld is outside the range of event ids", i,
                         (long long)t[i]);
            goto done;
        }
    }
    {
        char *out = (char *)data.buf;
        unsigned char *v = (unsigned char *)views.buf;
        const char *nd = (const char *)node.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            char *p = out + i * ID_LEN;
            int64_t us = t[i];
            memcpy(p, "evt_", 4);
            digits(p + 20, (uint64_t)(us >= 0 ? us : us - ID_MIN_US), 8);
            if (us < 0) p[4] = '-';
            memcpy(p + 20, nd, 6);
            digits(p + 34, (uint64_t)(seq0 + i) % 100000000u, 4);
            int32_t len = ID_LEN, buffer = 0, offset = (int32_t)(i * ID_LEN);
            unsigned char *w = v + i * 16; /* Arrow's view: length, 4-byte prefix, buffer index, offset */
            memcpy(w, &len, 4);
            memcpy(w + 4, "evt_", 4);
            memcpy(w + 8, &buffer, 4);
            memcpy(w + 12, &offset, 4);
        }
        Py_END_ALLOW_THREADS
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&times);
    PyBuffer_Release(&node);
    PyBuffer_Release(&views);
    PyBuffer_Release(&data);
    return result;
}

static void put_view(unsigned char *w, const char *text, Py_ssize_t start, Py_ssize_t end) {
    int32_t len = (int32_t)(end - start);
    memset(w, 0, 16);
    memcpy(w, &len, 4);
    if (len <= 12) {              /* inline: the bytes themselves */
        memcpy(w + 4, text + start, (size_t)len);
    } else {                      /* prefix, buffer 0, offset */
        int32_t offset = (int32_t)start;
        memcpy(w + 4, text + start, 4);
        memcpy(w + 12, &offset, 4);
    }
}

static PyObject *split_array(PyObject *self, PyObject *args) {
    Py_buffer text, views, validity;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "y*nw*w*", &text, &n, &views, &validity)) return NULL;
    PyObject *result = NULL;
    const char *t = (const char *)text.buf;
    Py_ssize_t len = text.len;
    if (n < 1 || views.len < n * 16 || validity.len < (n + 7) / 8 || len > INT32_MAX || len < 2 || t[0] != '[') {
        PyErr_SetString(PyExc_ValueError, "split_array: a JSON array of n >= 1 values below 2 GiB, 16-byte views "
                        "and a validity bitmap for n rows");
        goto done;
    }
    Py_ssize_t row = 0, nulls = 0, bad = 0;
    unsigned char *v = (unsigned char *)views.buf, *valid = (unsigned char *)validity.buf;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t start = 1, depth = 0, pos = 1;
    while (pos < len && !bad) {
        char c = t[pos];
        if (c == '"') {             /* a string: to its closing quote, escapes skipped */
            pos++;
            while (pos < len && t[pos] != '"') pos += (t[pos] == '\\') ? 2 : 1;
            pos++;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        } else if ((c == ',' && depth == 0) || (c == ']' && depth == 0)) {
            if (row >= n) { bad = 1; break; }
            Py_ssize_t k = pos - start;
            if ((k == 4 && memcmp(t + start, "null", 4) == 0) || (k == 2 && t[start] == '{' && t[start + 1] == '}')) {
                memset(v + row * 16, 0, 16);
                nulls++;
            } else {
                put_view(v + row * 16, t, start, pos);
                valid[row >> 3] |= (unsigned char)(1u << (row & 7));
            }
            row++;
            start = pos + 1;
            if (c == ']') { pos++; break; }
        }
        pos++;
    }
    if (row != n || pos != len) bad = 1;
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_Format(PyExc_ValueError, "split_array: the text is not a JSON array of %zd values", n);
        goto done;
    }
    result = PyLong_FromSsize_t(nulls);
done:
    PyBuffer_Release(&text);
    PyBuffer_Release(&views);
    PyBuffer_Release(&validity);
    return result;
}

static PyMethodDef methods[] = {
    {"fill", fill, METH_VARARGS, "fill(times, seq0, node, views, data): write a batch's event ids"},
    {"split_array", split_array, METH_VARARGS, "split_array(text, n, views, validity) -> nulls: a JSON array's values"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ingest",
    "log_batch's hot loops in C (see axon_audit/model/batch_ids.py, dict_columns.py).", -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_ingest(void) {
    for (int i = 0; i < 100; i++) {
        pairs[2 * i] = (char)('0' + i / 10);
        pairs[2 * i + 1] = (char)('0' + i % 10);
    }
    return PyModule_Create(&module);
}
