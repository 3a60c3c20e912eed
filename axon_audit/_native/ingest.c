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
 *
 * 3. A list of dicts by column, each dict visited once (a Python pass per column
 * costs a cache miss per dict and column), with the kinds of value each column
 * holds, so no later pass over the objects is needed to choose the fast paths.
 *
 *   transpose(items, keys) -> (columns, kinds) or None: columns[j] the values of
 *   keys[j] (None where missing), kinds[j] a bit mask (K_* below). None when an
 *   item is not exactly a dict or has a key outside `keys`: the caller's row-by-row
 *   path then names the row.
 *
 *   plain_json(values) -> bool: every value None or a dict holding only what orjson
 *   writes as itself (exact str keys; exact str, int, finite float, bool, None,
 *   list, tuple, dict values; at most 255 levels), so its text is `log`'s.
 *
 *   flatten(values, offsets) -> flat list or None: values None or lists/tuples of
 *   exact str; the strs in order and offsets (int64, n + 1) of each row's.
 *
 *   text_views(values) -> (validity, views, data, nulls) or None: a list of exact
 *   str or None as the buffers of an Arrow string_view array (values of up to 12
 *   bytes inline, longer ones in `data`); None when a value is of another type,
 *   is not valid UTF-8 (a lone surrogate) or the data would pass 2 GiB.
 *
 * 4. The logger's buffered row tuples by column (its flush, `rows_to_frame`): one pass
 * over the rows, no object made per row (zip(*rows) made a tracked iterator per row).
 *
 *   row_columns(rows, width) -> columns or None: rows a list of exact tuples of
 *   `width` items; columns[j] the list of every row's item j. None when a row is
 *   not such a tuple (the caller's Python path then does the same).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
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

enum { K_NONE = 1, K_STR = 2, K_NONASCII = 4, K_FLOAT = 8, K_INT = 16, K_BOOL = 32, K_LIST = 64,
       K_TUPLE = 128, K_DICT = 256, K_OTHER = 512 };

static inline long kind_of(PyObject *v) {
    if (v == Py_None) return K_NONE;
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type) return PyUnicode_IS_ASCII(v) ? K_STR : (K_STR | K_NONASCII);
    if (t == &PyFloat_Type) return K_FLOAT;
    if (t == &PyLong_Type) return K_INT;
    if (t == &PyBool_Type) return K_BOOL;
    if (t == &PyList_Type) return K_LIST;
    if (t == &PyTuple_Type) return K_TUPLE;
    if (t == &PyDict_Type) return K_DICT;
    return K_OTHER;
}

static PyObject *transpose(PyObject *self, PyObject *args) {
    PyObject *items, *keys;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &items, &PyTuple_Type, &keys)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(items), m = PyTuple_GET_SIZE(keys);
    if (m > 64) {
        PyErr_SetString(PyExc_ValueError, "transpose: at most 64 keys");
        return NULL;
    }
    PyObject *cols[64];
    long kinds[64];
    for (Py_ssize_t j = 0; j < m; j++) {
        cols[j] = PyList_New(n);
        kinds[j] = 0;
        if (!cols[j]) {
            for (Py_ssize_t k = 0; k < j; k++) Py_DECREF(cols[k]);
            return NULL;
        }
    }
    int ok = 1;
    Py_ssize_t i = 0;
    for (; i < n && ok; i++) {
        PyObject *d = PyList_GET_ITEM(items, i);
        if (!PyDict_CheckExact(d)) { ok = 0; break; }
        Py_ssize_t found = 0;
        for (Py_ssize_t j = 0; j < m; j++) {
            PyObject *v = PyDict_GetItemWithError(d, PyTuple_GET_ITEM(keys, j));
            if (v) {
                found++;
            } else {
                if (PyErr_Occurred()) { ok = -1; break; }
                v = Py_None;
            }
            kinds[j] |= kind_of(v);
            Py_INCREF(v);
            PyList_SET_ITEM(cols[j], i, v);
        }
        if (ok == 1 && found != PyDict_GET_SIZE(d)) ok = 0;  /* a key outside `keys` */
    }
    if (ok != 1) {
        /* rows not reached hold NULL, which list dealloc skips */
        for (Py_ssize_t j = 0; j < m; j++) Py_DECREF(cols[j]);
        if (ok == -1) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *out_cols = PyList_New(m), *out_kinds = PyList_New(m);
    if (!out_cols || !out_kinds) {
        Py_XDECREF(out_cols);
        Py_XDECREF(out_kinds);
        for (Py_ssize_t j = 0; j < m; j++) Py_DECREF(cols[j]);
        return NULL;
    }
    for (Py_ssize_t j = 0; j < m; j++) {
        PyList_SET_ITEM(out_cols, j, cols[j]);
        PyObject *k = PyLong_FromLong(kinds[j]);
        if (!k) {
            Py_DECREF(out_cols);
            Py_DECREF(out_kinds);
            return NULL;
        }
        PyList_SET_ITEM(out_kinds, j, k);
    }
    return Py_BuildValue("(NN)", out_cols, out_kinds);
}

static int plain(PyObject *v, int depth) {
    PyTypeObject *t = Py_TYPE(v);
    if (v == Py_None || t == &PyUnicode_Type || t == &PyLong_Type || t == &PyBool_Type) return 1;
    if (t == &PyFloat_Type) return isfinite(PyFloat_AS_DOUBLE(v));
    if (depth >= 255) return 0;
    if (t == &PyList_Type || t == &PyTuple_Type) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
        PyObject **items = PySequence_Fast_ITEMS(v);
        for (Py_ssize_t i = 0; i < n; i++)
            if (!plain(items[i], depth + 1)) return 0;
        return 1;
    }
    if (t == &PyDict_Type) {
        Py_ssize_t pos = 0;
        PyObject *k, *x;
        while (PyDict_Next(v, &pos, &k, &x))
            if (Py_TYPE(k) != &PyUnicode_Type || !plain(x, depth + 1)) return 0;
        return 1;
    }
    return 0;
}

static PyObject *plain_json(PyObject *self, PyObject *values) {
    if (!PyList_CheckExact(values)) Py_RETURN_FALSE;
    Py_ssize_t n = PyList_GET_SIZE(values);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (v != Py_None && (!PyDict_CheckExact(v) || !plain(v, 1))) Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyObject *flatten(PyObject *self, PyObject *args) {
    PyObject *values;
    Py_buffer offsets;
    if (!PyArg_ParseTuple(args, "O!w*", &PyList_Type, &values, &offsets)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(values), total = 0;
    PyObject *result = NULL;
    int64_t *off = (int64_t *)offsets.buf;
    if (offsets.len < (n + 1) * 8) {
        PyErr_SetString(PyExc_ValueError, "flatten: offsets needs n + 1 int64");
        goto done;
    }
    off[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (v != Py_None) {
            if (!PyList_CheckExact(v) && !PyTuple_CheckExact(v)) { result = Py_None; Py_INCREF(result); goto done; }
            Py_ssize_t k = PySequence_Fast_GET_SIZE(v);
            PyObject **items = PySequence_Fast_ITEMS(v);
            for (Py_ssize_t j = 0; j < k; j++)
                if (Py_TYPE(items[j]) != &PyUnicode_Type) { result = Py_None; Py_INCREF(result); goto done; }
            total += k;
        }
        off[i + 1] = total;
    }
    result = PyList_New(total);
    if (!result) goto done;
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (v == Py_None) continue;
        Py_ssize_t k = PySequence_Fast_GET_SIZE(v);
        PyObject **items = PySequence_Fast_ITEMS(v);
        for (Py_ssize_t j = 0; j < k; j++) {
            Py_INCREF(items[j]);
            PyList_SET_ITEM(result, at++, items[j]);
        }
    }
done:
    PyBuffer_Release(&offsets);
    return result;
}

static PyObject *text_views(PyObject *self, PyObject *values) {
    if (!PyList_CheckExact(values)) Py_RETURN_NONE;
    Py_ssize_t n = PyList_GET_SIZE(values), total = 0, nulls = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (v == Py_None) { nulls++; continue; }
        if (Py_TYPE(v) != &PyUnicode_Type) Py_RETURN_NONE;
        Py_ssize_t len;
        if (PyUnicode_IS_ASCII(v)) {
            len = PyUnicode_GET_LENGTH(v);
        } else if (!PyUnicode_AsUTF8AndSize(v, &len)) {  /* a lone surrogate: the caller names it */
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        if (len > 12) total += len;
        if (total > INT32_MAX || len > INT32_MAX) Py_RETURN_NONE;
    }
    PyObject *validity = PyBytes_FromStringAndSize(NULL, (n + 7) / 8);
    PyObject *views = PyBytes_FromStringAndSize(NULL, n * 16);
    PyObject *data = PyBytes_FromStringAndSize(NULL, total);
    if (!validity || !views || !data) {
        Py_XDECREF(validity);
        Py_XDECREF(views);
        Py_XDECREF(data);
        return NULL;
    }
    unsigned char *valid = (unsigned char *)PyBytes_AS_STRING(validity), *w = (unsigned char *)PyBytes_AS_STRING(views);
    char *d = PyBytes_AS_STRING(data);
    memset(valid, 0, (size_t)((n + 7) / 8));
    memset(w, 0, (size_t)(n * 16));
    int32_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++, w += 16) {
        PyObject *v = PyList_GET_ITEM(values, i);
        if (v == Py_None) continue;
        valid[i >> 3] |= (unsigned char)(1u << (i & 7));
        Py_ssize_t len;
        const char *src = PyUnicode_IS_ASCII(v) ? (const char *)PyUnicode_DATA(v) : PyUnicode_AsUTF8AndSize(v, &len);
        if (PyUnicode_IS_ASCII(v)) len = PyUnicode_GET_LENGTH(v);
        int32_t l32 = (int32_t)len;
        memcpy(w, &l32, 4);
        if (len <= 12) {
            memcpy(w + 4, src, (size_t)len);
        } else {
            memcpy(w + 4, src, 4);
            memcpy(w + 12, &at, 4);
            memcpy(d + at, src, (size_t)len);
            at += l32;
        }
    }
    return Py_BuildValue("(NNNn)", validity, views, data, nulls);
}

static PyObject *row_columns(PyObject *self, PyObject *args) {
    PyObject *rows;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "O!n", &PyList_Type, &rows, &width)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(rows);
    if (width <= 0) {
        PyErr_SetString(PyExc_ValueError, "row_columns: width must be > 0");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = PyList_GET_ITEM(rows, i);
        if (!PyTuple_CheckExact(r) || PyTuple_GET_SIZE(r) != width) Py_RETURN_NONE;
    }
    PyObject *columns = PyList_New(width);
    if (!columns) return NULL;
    for (Py_ssize_t j = 0; j < width; j++) {
        PyObject *col = PyList_New(n);
        if (!col) { Py_DECREF(columns); return NULL; }
        PyList_SET_ITEM(columns, j, col);
    }
    PyObject **cols = ((PyListObject *)columns)->ob_item;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject **items = ((PyTupleObject *)PyList_GET_ITEM(rows, i))->ob_item;
        for (Py_ssize_t j = 0; j < width; j++) {
            Py_INCREF(items[j]);
            PyList_SET_ITEM(cols[j], i, items[j]);
        }
    }
    return columns;
}

static PyMethodDef methods[] = {
    {"fill", fill, METH_VARARGS, "fill(times, seq0, node, views, data): write a batch's event ids"},
    {"plain_json", plain_json, METH_O, "plain_json(values) -> bool: dicts orjson writes as themselves"},
    {"flatten", flatten, METH_VARARGS, "flatten(values, offsets) -> flat list or None: lists of str"},
    {"text_views", text_views, METH_O, "text_views(values) -> (validity, views, data, nulls) or None"},
    {"transpose", transpose, METH_VARARGS, "transpose(items, keys) -> (columns, kinds) or None: dicts by column"},
    {"row_columns", row_columns, METH_VARARGS, "row_columns(rows, width) -> columns or None: tuples by column"},
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
